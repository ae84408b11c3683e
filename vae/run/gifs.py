"""Frames as PNG files, and gifs assembled from them.

The canvas gif runs in *log time*, as the original did: the decoder changes most in the first epochs, so frame i
is shown for a time proportional to log(i + 2) - log(i + 1). With 100 epochs the first epoch alone is on screen as
long as the last fifty together (log 2 against log(101/51)).

Grey frames (the canvas, samples and reconstructions of grey data sets) are stored compactly, with differences no
eye can see (`held_grey_frames`): 128 grey levels instead of 256 (at most 1/255 off), and a pixel keeps its shown
value until it has changed by more than `HOLD_LEVELS`/255. Pillow stores a pixel that did not change from one frame
to the next as transparent, and long transparent runs compress well, so a 100-frame canvas takes a few MB instead of
about twice that. The PNG frames themselves stay exact. Frames are streamed from disk into the encoder one at a
time, so a long run's gif never holds all its frames in memory.
"""

import io
import os

import imageio.v3 as iio
import numpy as np
from PIL import Image

from vae.run.fileio import write_bytes_atomic

GREY_STEP = 2      # grey frames keep every second level: 128 levels, each pixel at most 1/255 from its value
HOLD_LEVELS = 8    # a grey pixel is redrawn only when it has moved more than this many levels from what is shown


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


def write_gif(path, frames, durations_ms, compact_grey=True):
  """Writes frames (an iterable of same-shape uint8 images) as a looping gif, atomically.

  With `compact_grey`, grey frames are stored as `held_grey_frames` shows them (the module docstring says why);
  without it every frame is stored exactly.

  The frames are consumed one at a time: Pillow keeps only each frame's palette-indexed copy (one byte per
  pixel), so a generator that reads the frames from disk keeps a 100-frame gif's memory at a fraction of the
  RGB frames' size.
  """
  durations = [int(d) for d in durations_ms]
  count = 0

  def pil_images():
    nonlocal count
    for frame in (held_grey_frames(frames) if compact_grey else map(np.asarray, frames)):
      count += 1
      if count > len(durations):
        raise ValueError(f'more frames than the {len(durations)} durations')
      yield Image.fromarray(np.asarray(frame, dtype=np.uint8))

  images = pil_images()
  head = next(images, None)
  if head is None:
    raise ValueError('no frames')
  buffer = io.BytesIO()
  if len(durations) == 1:
    # Pillow wants a plain number, not a one-element list, for a single frame.
    head.save(buffer, format='GIF', duration=durations[0], loop=0)
    for _ in images:  # only to count (and refuse) any further frames
      pass
  else:
    head.save(buffer, format='GIF', save_all=True, append_images=images, duration=durations, loop=0)
  if count != len(durations):
    raise ValueError(f'{count} frames but {len(durations)} durations')
  write_bytes_atomic(path, buffer.getvalue())


def held_grey_frames(frames, step=GREY_STEP, hold=HOLD_LEVELS):
  """The frames as a gif shows them: grey [H, W] frames on `256 / step` levels, each pixel kept at its previous
  shown value until it moves by more than `hold` levels; colour frames as they are. A generator, frame by frame.

  Each shown pixel is within step // 2 + hold levels of the frame's own value.
  """
  shown = None
  for frame in frames:
    frame = np.asarray(frame, dtype=np.uint8)
    if frame.ndim != 2:
      yield frame
      continue
    levels = np.minimum((frame.astype(np.int16) + step // 2) // step * step, 255 // step * step)    # [H, W]
    shown = levels if shown is None else np.where(np.abs(levels - shown) > hold, levels, shown)
    yield shown.astype(np.uint8)


def gif_from_frames(path, frame_dir, epochs, durations_ms):
  """Assembles the PNG frames of epochs 1..`epochs` in `frame_dir` into a gif at `path`, one frame at a time."""
  frames = (iio.imread(frame_path(frame_dir, epoch)) for epoch in range(1, epochs + 1))
  write_gif(path, frames, durations_ms)
