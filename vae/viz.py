"""Per-epoch pictures of a 2-d latent space, and the gifs made from them.

Two frames are drawn after every epoch when latent_dim == 2:

* the *spread*: the posterior means mu(x) of 5000 fixed test images, one dot per image coloured by its digit,
  each digit's centroid labelled, on fixed axes [-5, 5]^2 so that frames line up into an animation;
* the *canvas*: the decoder's pixel probabilities sigmoid(f(z)) on a 15x15 grid of z over [-2, 2]^2, tiled into
  one 420x420 image. Since p(z) = N(0, I), the grid covers the region where most of the prior's mass lies.

At the end the frames become `spread.gif` and `canvas.gif`. The canvas gif runs in *log time*, as the original
did: the decoder changes most in the first epochs, so frame i is shown for a time proportional to
log(i + 2) - log(i + 1), and the first few epochs get as much screen time as the last fifty.

Everything except `SpreadPlot` is a pure numpy helper, testable without a display. matplotlib runs on the Agg
backend (no window), and the single spread figure is reused for every frame (clearing and re-drawing a figure
costs a fraction of creating one) and closed at the end.
"""

import os

import imageio.v3 as iio
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from vae.data import IMAGE_SIZE, NUM_CLASSES  # noqa: E402
from vae.fileio import ensure_writable_dir, write_bytes_atomic  # noqa: E402

SPREAD_LIMIT = 5.0    # the spread plot shows [-5, 5]^2
CANVAS_SIZE = 15      # a 15x15 grid of decoded digits
CANVAS_LIMIT = 2.0    # over [-2, 2]^2
NUM_SPREAD_POINTS = 5000


def latent_grid(n=CANVAS_SIZE, limit=CANVAS_LIMIT):
  """The canvas grid, float32 [n*n, 2], in row-major order of the tiled picture.

  Column c has z_1 = linspace(-limit, limit)[c] (left to right); row r has z_2 = linspace(limit, -limit)[r]
  (top to bottom), so the picture reads like a plot with z_2 pointing up.
  """
  values = np.linspace(-limit, limit, n, dtype=np.float32)
  z1, z2 = np.meshgrid(values, values[::-1])   # [n, n] each
  return np.stack([z1.ravel(), z2.ravel()], axis=-1)


def tile(images, rows, cols):
  """[rows*cols, H, W] -> [rows*H, cols*W]: image k goes to row k // cols, column k % cols."""
  images = np.asarray(images)
  count, height, width = images.shape
  if count != rows * cols:
    raise ValueError(f'cannot tile {count} images into {rows}x{cols}')
  return images.reshape(rows, cols, height, width).transpose(0, 2, 1, 3).reshape(rows * height, cols * width)


def canvas_frame(logits, n=CANVAS_SIZE):
  """Decoder logits [n*n, 784] -> a uint8 grey image [n*28, n*28] of pixel probabilities (white = ink)."""
  probabilities = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
  pixels = np.round(probabilities * 255.0).astype(np.uint8)
  return tile(pixels.reshape(n * n, IMAGE_SIZE, IMAGE_SIZE), n, n)


def class_centroids(points, labels):
  """{digit: mean point} over the digits present in `labels`. points [N, 2], labels [N]."""
  return {int(d): points[labels == d].mean(axis=0) for d in np.unique(labels)}


def log_time_durations(num_frames, total_seconds=10.0, min_ms=20):
  """Per-frame durations in milliseconds that play the frames in log time.

  Frame i lasts proportionally to log(i + 2) - log(i + 1). Durations are whole multiples of 10 ms (the GIF
  format's unit) and at least `min_ms`, because browsers show faster frames at 100 ms instead.
  """
  edges = np.log(np.arange(1, num_frames + 2, dtype=np.float64))
  seconds = total_seconds * np.diff(edges) / edges[-1]
  return [max(min_ms, int(round(s * 100.0)) * 10) for s in seconds]


def frame_path(directory, epoch):
  return os.path.join(directory, f'epoch_{epoch:04d}.png')


def save_png(path, image):
  """Writes a uint8 image ([H, W] grey or [H, W, 3] RGB) as a PNG, atomically."""
  write_bytes_atomic(path, iio.imwrite('<bytes>', np.asarray(image, dtype=np.uint8), extension='.png'))


def write_gif(path, frames, durations_ms):
  """Writes frames (a list of same-shape uint8 images) as a looping gif, atomically."""
  if len(frames) != len(durations_ms):
    raise ValueError(f'{len(frames)} frames but {len(durations_ms)} durations')
  data = iio.imwrite('<bytes>', np.stack(frames), extension='.gif', duration=list(durations_ms), loop=0)
  write_bytes_atomic(path, data)


def gif_from_frames(path, frame_dir, epochs, durations_ms):
  """Assembles the PNG frames of epochs 1..`epochs` in `frame_dir` into a gif at `path`."""
  frames = [iio.imread(frame_path(frame_dir, epoch)) for epoch in range(1, epochs + 1)]
  write_gif(path, frames, durations_ms)


class SpreadPlot:
  """Draws spread frames on one reused matplotlib figure."""

  def __init__(self, labels, size_inches=6.0, dpi=100):
    self.labels = np.asarray(labels)
    self.figure = plt.figure(figsize=(size_inches, size_inches), dpi=dpi)
    self.colours = plt.get_cmap('tab10')(self.labels % NUM_CLASSES)

  def render(self, points, epoch):
    """points [N, 2] (latent means of the N fixed images) -> uint8 RGB image of the frame."""
    self.figure.clear()
    ax = self.figure.add_subplot(1, 1, 1)
    ax.scatter(points[:, 0], points[:, 1], c=self.colours, s=4, alpha=0.6, linewidths=0)
    for digit, centre in class_centroids(points, self.labels).items():
      x, y = np.clip(centre, -SPREAD_LIMIT * 0.95, SPREAD_LIMIT * 0.95)
      ax.annotate(str(digit), (x, y), ha='center', va='center', fontsize=14, weight='bold',
                  bbox=dict(boxstyle='circle,pad=0.2', facecolor='white', alpha=0.8,
                            edgecolor=plt.get_cmap('tab10')(digit)))
    ax.set_xlim(-SPREAD_LIMIT, SPREAD_LIMIT)
    ax.set_ylim(-SPREAD_LIMIT, SPREAD_LIMIT)
    ax.set_aspect('equal')
    ax.set_xlabel('$z_1$')
    ax.set_ylabel('$z_2$')
    ax.set_title(f'posterior means of {len(points)} test digits, epoch {epoch}')
    self.figure.tight_layout()
    self.figure.canvas.draw()
    return np.asarray(self.figure.canvas.buffer_rgba())[..., :3].copy()

  def close(self):
    plt.close(self.figure)


class EpochFrames:
  """Writes the spread and canvas frames of each epoch under `<output_dir>/figs/`, and the gifs at the end."""

  def __init__(self, output_dir, spread_labels):
    self.output_dir = output_dir
    self.spread_dir = os.path.join(output_dir, 'figs', 'spread')
    self.canvas_dir = os.path.join(output_dir, 'figs', 'canvas')
    for directory in (self.spread_dir, self.canvas_dir):
      ensure_writable_dir(directory, 'frame directory')
    self.spread_plot = SpreadPlot(spread_labels)

  def write(self, epoch, spread_points, canvas_logits):
    save_png(frame_path(self.spread_dir, epoch), self.spread_plot.render(spread_points, epoch))
    save_png(frame_path(self.canvas_dir, epoch), canvas_frame(canvas_logits))

  def write_gifs(self, epochs):
    """Writes spread.gif (evenly timed) and canvas.gif (log time) from the frames of epochs 1..`epochs`."""
    spread_ms = [max(20, int(round(10000.0 / epochs / 10.0)) * 10)] * epochs
    gif_from_frames(os.path.join(self.output_dir, 'spread.gif'), self.spread_dir, epochs, spread_ms)
    gif_from_frames(os.path.join(self.output_dir, 'canvas.gif'), self.canvas_dir, epochs,
                    log_time_durations(epochs))

  def close(self):
    self.spread_plot.close()
