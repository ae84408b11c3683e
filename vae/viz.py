"""Per-epoch pictures of the latent space and the decoder, and the gifs made from them.

With latent_dim == 2 two frames are drawn after every epoch:

* the *spread*: the posterior means mu(x) of 5000 fixed test images, one dot per image coloured by its class,
  each class named (on its centroid, or in a legend when the names are long), on fixed axes [-5, 5]^2 so that
  frames line up into an animation;
* the *canvas*: the likelihood's mean E[x | z] of every pixel on a 15x15 grid of z over [-2, 2]^2, tiled into
  one image (420x420 for MNIST; in colour for colour images). Since p(z) = N(0, I), the grid covers the region
  where most of the prior's mass lies.

With any other latent_dim a 2-d grid over z does not cover the latent space, so three frames are drawn instead:

* the *spread* of the posterior means projected onto their first two principal components (PCA, refitted each
  epoch, signs fixed so the picture does not flip between frames);
* *samples*: 10x10 images decoded from fixed draws z ~ N(0, I);
* *reconstructions*: 50 fixed test images (odd rows) above their reconstructions (even rows), decoded from one
  fixed posterior sample each.

Every decoded picture shows the mean of the likelihood the run trained (vae/model.py): for the Bernoulli that is
its parameter sigmoid(f(z)), for the continuous Bernoulli not its parameter but E[x | z]. The functions here take
logits whose sigmoid is that mean (`VAE.decode_mean_logits`), so they draw either the same way.

At the end each kind of frame becomes a gif (`spread.gif`, `canvas.gif`, or `samples.gif`,
`reconstructions.gif`; vae/run/frames.py writes the frames and the gifs), the canvas in log time as in the
original.

The inputs of the decoded frames (the grid, the prior draws, the test digits and their posterior noise) are
drawn once, before training (`fixed_frame_inputs`), and each kind is decoded in one batch (`decode_frames`).
The array helpers (`latent_grid`, `tile`, `canvas_frame`, `reconstruction_frame`, `pca_2d`, ...) are pure numpy
functions, testable without a display; `fixed_frame_inputs` and `decode_frames` use TensorFlow, `SpreadPlot` and
`plot_metrics` draw with matplotlib on the Agg backend (no window). The single spread figure is reused for every
frame and closed at the end.
"""

import matplotlib

matplotlib.use('Agg')
import matplotlib.lines  # noqa: E402  (the backend must be chosen first)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vae.run import keys  # noqa: E402
from vae.preprocess import DIGITS, MNIST_SHAPE  # noqa: E402

SPREAD_LIMIT = 5.0    # the spread plot shows [-5, 5]^2
CANVAS_SIZE = 15      # a 15x15 grid of decoded digits
CANVAS_LIMIT = 2.0    # over [-2, 2]^2
NUM_SPREAD_POINTS = 5000
NUM_SAMPLES = 100          # the samples frame: 10x10 decoded prior draws (latent_dim != 2)
NUM_RECONSTRUCTIONS = 50   # the reconstructions frame: 50 test digits and their reconstructions


def latent_grid(n=CANVAS_SIZE, limit=CANVAS_LIMIT):
  """The canvas grid, float32 [n*n, 2], in row-major order of the tiled picture.

  Column c has z_1 = linspace(-limit, limit)[c] (left to right); row r has z_2 = linspace(limit, -limit)[r]
  (top to bottom), so the picture reads like a plot with z_2 pointing up.
  """
  values = np.linspace(-limit, limit, n, dtype=np.float32)
  z1, z2 = np.meshgrid(values, values[::-1])   # [n, n] each
  return np.stack([z1.ravel(), z2.ravel()], axis=-1)


def fixed_frame_inputs(latent_dim, seed, test_images):
  """The decoder inputs of the non-spread frames, drawn once before training: {kind: inputs}."""
  import tensorflow as tf  # here, so that the pure helpers of this module need no TensorFlow

  if latent_dim == 2:
    return {'canvas': tf.constant(latent_grid())}
  count = min(NUM_RECONSTRUCTIONS, len(test_images) // 10 * 10)
  prior = tf.random.stateless_normal([NUM_SAMPLES, latent_dim], seed=keys.key(seed, keys.FRAME_INPUTS, 0))
  posterior = tf.random.stateless_normal([count, latent_dim], seed=keys.key(seed, keys.FRAME_INPUTS, 1))
  return {'samples': prior, 'reconstructions': (test_images[:count], posterior)}


def decode_frames(decode, reconstruct, fixed, image_shape=MNIST_SHAPE):
  """Decodes each kind's fixed inputs in one batch -> {kind: uint8 frame}.

  decode: z [N, latent_dim] -> logits [N, D]; reconstruct: (x [N, D], eps [N, latent_dim]) -> the logits of x
  decoded from z = mean(x) + sigma(x) * eps.
  """
  if 'canvas' in fixed:
    return {'canvas': canvas_frame(decode(fixed['canvas']).numpy(), image_shape)}
  originals, eps = fixed['reconstructions']
  return {'samples': probability_tile(decode(fixed['samples']).numpy(), 10, 10, image_shape),
          'reconstructions': reconstruction_frame(originals, reconstruct(originals, eps).numpy(), image_shape)}


def tile(images, rows, cols):
  """[rows*cols, H, W(, C)] -> [rows*H, cols*W(, C)]: image k goes to row k // cols, column k % cols."""
  images = np.asarray(images)
  count, height, width = images.shape[:3]
  if count != rows * cols:
    raise ValueError(f'cannot tile {count} images into {rows}x{cols}')
  channels = images.shape[3:]
  grid = images.reshape(rows, cols, height, width, *channels).swapaxes(1, 2)   # [rows, H, cols, W(, C)]
  return grid.reshape(rows * height, cols * width, *channels)


def sigmoid(logits):
  return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def probability_tile(logits, rows, cols, image_shape=MNIST_SHAPE):
  """Decoder logits [rows*cols, D] -> a uint8 image of their Bernoulli means, tiled (see `image_tile`)."""
  return image_tile(sigmoid(logits), rows, cols, image_shape)


def image_tile(intensities, rows, cols, image_shape=MNIST_SHAPE):
  """Intensities in [0, 1], [rows*cols, D] -> uint8 [rows*H, cols*W] for grey images (white = ink), or
  [rows*H, cols*W, 3] RGB for colour ones."""
  height, width, channels = image_shape
  pixels = np.round(np.asarray(intensities) * 255.0).astype(np.uint8).reshape(rows * cols, height, width, channels)
  return tile(pixels[..., 0] if channels == 1 else pixels, rows, cols)


def canvas_frame(logits, image_shape=MNIST_SHAPE, n=CANVAS_SIZE):
  """The canvas: decoder logits [n*n, D] on the latent grid -> uint8 [n*H, n*W(, 3)]."""
  return probability_tile(logits, n, n, image_shape)


def reconstruction_frame(originals, logits, image_shape=MNIST_SHAPE, cols=10):
  """Originals [N, D] in [0, 1] and their reconstructions' logits [N, D] -> rows alternating the two."""
  originals = np.asarray(originals, dtype=np.float64)
  rows = len(originals) // cols
  pairs = np.stack([originals.reshape(rows, cols, -1), sigmoid(logits).reshape(rows, cols, -1)], axis=1)
  return image_tile(pairs.reshape(2 * rows * cols, -1), 2 * rows, cols, image_shape)


def pca_2d(points):
  """Projects points [N, d] onto their first two principal components -> [N, 2].

  Each component's sign is chosen so that its largest loading is positive; otherwise SVD may flip the picture
  from one frame to the next.
  """
  centred = points - points.mean(axis=0)
  _, _, components = np.linalg.svd(centred, full_matrices=False)   # rows: principal directions
  components = components[:2]
  signs = np.sign(components[np.arange(len(components)), np.argmax(np.abs(components), axis=1)])
  projected = centred @ (components * signs[:, None]).T
  if projected.shape[1] < 2:  # latent_dim == 1: plot along a line
    projected = np.concatenate([projected, np.zeros_like(projected)], axis=1)
  return projected


def class_centroids(points, labels):
  """{class: mean point} over the classes present in `labels`. points [N, 2], labels [N]."""
  return {int(d): points[labels == d].mean(axis=0) for d in np.unique(labels)}


def plot_metrics(rows):
  """The loss curves of a run (rows of metrics.csv as dicts) -> uint8 RGB image.

  Left: the training objective and the test -ELBO per epoch. Middle: the test rate and distortion, the two terms
  of the -ELBO, each on its own axis, since on MNIST the distortion is usually many times the rate. Right: the
  active units, the latent dimensions in use (a falling count is posterior collapse; vae/evaluate.py defines them).
  """
  from vae.evaluate import ACTIVE_UNIT_THRESHOLD  # here: the rest of this module's helpers need no TensorFlow

  epochs = [row['epoch'] for row in rows]
  figure = plt.figure(figsize=(14, 4), dpi=100)
  try:
    left = figure.add_subplot(1, 3, 1)
    left.plot(epochs, [row['train_loss'] for row in rows], label='training objective')
    left.plot(epochs, [-row['test_elbo'] for row in rows], label='test -ELBO')
    left.set_xlabel('epoch')
    left.set_ylabel('nats')
    left.legend()
    rate_axis = figure.add_subplot(1, 3, 2)
    rate_axis.plot(epochs, [row['test_rate'] for row in rows], color='tab:green', label='rate (KL)')
    rate_axis.set_xlabel('epoch')
    rate_axis.set_ylabel('rate, nats', color='tab:green')
    distortion_axis = rate_axis.twinx()
    distortion_axis.plot(epochs, [row['test_distortion'] for row in rows], color='tab:red', label='distortion')
    distortion_axis.set_ylabel('distortion, nats', color='tab:red')
    rate_axis.set_title('test rate and distortion')
    units = figure.add_subplot(1, 3, 3)
    units.plot(epochs, [row['active_units'] for row in rows], color='tab:purple', drawstyle='steps-post')
    units.set_xlabel('epoch')
    units.set_ylabel('active units')
    units.set_ylim(bottom=0)
    units.set_title(f'active units (Cov_x E[z_u] > {ACTIVE_UNIT_THRESHOLD})')
    figure.tight_layout()
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
  finally:
    plt.close(figure)


def class_colours(num_classes):
  """One RGBA colour per class: tab10 for up to 10 classes (MNIST's familiar colours), tab20 up to 20, else
  evenly spaced hues."""
  if num_classes <= 10:
    return plt.get_cmap('tab10')(np.arange(num_classes))
  if num_classes <= 20:
    return plt.get_cmap('tab20')(np.arange(num_classes))
  return plt.get_cmap('gist_rainbow')(np.linspace(0.0, 1.0, num_classes, endpoint=False))


class SpreadPlot:
  """Draws spread frames on one reused matplotlib figure.

  The axes, the scatter and the class labels are made once, on the first frame; each later frame only moves the
  points and labels and retitles, so a frame costs one draw rather than building the plot afresh. Short class
  names (MNIST's digits) sit on their class's centroid; long ones (Fashion-MNIST's "T-shirt/top") go in a legend
  beside the plot.
  """

  def __init__(self, labels, class_names=DIGITS, size_inches=6.0, dpi=100):
    self.labels = np.asarray(labels)
    self.class_names = tuple(class_names)
    self.on_centroids = all(len(name) <= 2 for name in self.class_names)
    width = size_inches if self.on_centroids else size_inches * 1.45
    self.figure = plt.figure(figsize=(width, size_inches), dpi=dpi)
    self.palette = class_colours(len(self.class_names))
    self.colours = self.palette[self.labels % len(self.class_names)]
    self.axes = None

  def _build(self, points, projected):
    ax = self.axes = self.figure.add_subplot(1, 1, 1)
    self.scatter = ax.scatter(points[:, 0], points[:, 1], c=self.colours, s=4, alpha=0.6, linewidths=0)
    present = sorted(class_centroids(points, self.labels))
    self.class_labels = {}
    if self.on_centroids:
      self.class_labels = {
          c: ax.annotate(self.class_names[c], (0.0, 0.0), ha='center', va='center', fontsize=14, weight='bold',
                         bbox=dict(boxstyle='circle,pad=0.2', facecolor='white', alpha=0.8,
                                   edgecolor=self.palette[c]))
          for c in present}
    else:
      handles = [matplotlib.lines.Line2D([], [], marker='o', linestyle='', color=self.palette[c],
                                         label=self.class_names[c]) for c in present]
      ax.legend(handles=handles, loc='upper left', bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False)
    ax.set_xlim(-SPREAD_LIMIT, SPREAD_LIMIT)
    ax.set_ylim(-SPREAD_LIMIT, SPREAD_LIMIT)
    ax.set_aspect('equal')
    ax.set_xlabel('first principal component' if projected else '$z_1$')
    ax.set_ylabel('second principal component' if projected else '$z_2$')
    self.title = ax.set_title(' ')
    self.figure.tight_layout()

  def legend_names(self):
    """The class names the legend shows (empty when the names sit on the centroids)."""
    legend = self.axes.get_legend() if self.axes else None
    return [text.get_text() for text in legend.get_texts()] if legend else []

  def render(self, points, epoch, projected=False):
    """points [N, 2] (latent means of the N fixed images) -> uint8 RGB image of the frame."""
    if self.axes is None:
      self._build(points, projected)
    self.scatter.set_offsets(points)
    for c, centre in class_centroids(points, self.labels).items():
      if c in self.class_labels:  # no arrow, so the text sits on the annotated point: both move
        self.class_labels[c].xy = self.class_labels[c].xyann = tuple(
            np.clip(centre, -SPREAD_LIMIT * 0.95, SPREAD_LIMIT * 0.95))
    what = 'PCA of posterior means' if projected else 'posterior means'
    self.title.set_text(f'{what} of {len(points)} test images, epoch {epoch}')
    self.figure.canvas.draw()
    return np.asarray(self.figure.canvas.buffer_rgba())[..., :3].copy()

  def close(self):
    plt.close(self.figure)
