r"""`vae-explore` (or `python -m vae.commands.explore`): a trained model's prior samples, reconstructions and
interpolations, from its export alone.

    vae-explore --output_dir=runs/default               # writes PNGs and a gif into runs/default/explore
    vae-explore --output_dir=. --count=50 --pairs=4 --steps=12 --seed=3 --prefix=seed3_

It reads only what a run exports: `export/encoder.keras`, `export/decoder.keras` and `flags.json` (which data set
to take test images from, and which likelihood: every picture shows its mean, see vae/viz.py); no checkpoint and
none of the training code. It writes

    samples.png               --count images decoded from z ~ N(0, I), ten to a row
    mean_reconstructions.png  --count test images (odd rows) above their decoded posterior means (run.py's
                              per-epoch reconstructions frames, vae/viz.py, decode a posterior sample instead)
    interpolations.png        --pairs rows: two test images' posterior means joined in --steps steps, decoded
    interpolation.gif         the same paths as an animation, there and back

Interpolation is linear for latent_dim = 2 (the plane the canvas shows) and spherical for latent_dim > 2
(`slerp`, after Shoemake 1985 and White 2016 [1]): the code's direction turns at a constant rate along the great
circle between the two posterior means, and its norm goes linearly from one mean's norm to the other's. A
straight line between two codes of similar norm passes closer to the origin than either (halfway between two
orthogonal codes of norm r its norm is r / sqrt(2)), through a region that few test images are encoded to; the
spherical path keeps the norm between the two ends. The posterior means are shorter than prior samples and of
unequal norm, which is why the norm is interpolated rather than held.

References:
  [1] T. White. Sampling Generative Networks. 2016. https://arxiv.org/abs/1609.04468
"""

import math
import os
import sys

from absl import flags

from vae.commands import cli
from vae.commands.errors import VAEError, fail

COMMAND = cli.Command('python -m vae.commands.explore', 'Prior samples, reconstructions and interpolations of a '
                      'trained model, from its export alone.', script='vae-explore')
_FLAGS = COMMAND.flags
flags.DEFINE_string('output_dir', '.', 'The run directory: its export/ and flags.json are read.', flag_values=_FLAGS)
flags.DEFINE_string('data_dir', None, 'Where the run\'s data set lives; default: the data_dir in its flags.json.',
                    flag_values=_FLAGS)
flags.DEFINE_string('save_dir', None, 'Where the pictures go; default: <output_dir>/explore.', flag_values=_FLAGS)
flags.DEFINE_string('prefix', '', 'Prepended to every file name written (e.g. "seed3_").', flag_values=_FLAGS)
flags.DEFINE_integer('count', 50, 'Prior samples, and test images to reconstruct; a multiple of 10.',
                     flag_values=_FLAGS)
flags.DEFINE_integer('pairs', 6, 'Pairs of test images to interpolate between (two distinct images each).',
                     flag_values=_FLAGS)
flags.DEFINE_integer('steps', 10, 'Points on each interpolation path, both ends included (at least 2).',
                     flag_values=_FLAGS)
flags.DEFINE_integer('seed', 0, 'Seeds the prior samples and the choice of test images.', flag_values=_FLAGS)

COLUMNS = 10


def slerp(a, b, t):
  """Spherical interpolation between codes a and b [d] at fractions t [T] -> [T, d].

  The direction turns from a's to b's along the great circle between them at a constant rate (the angle to a is
  t * Omega, Omega the angle between a and b), and the norm changes linearly from |a| to |b|. The turn is written
  as cos(t Omega) u + sin(t Omega) v with u = a / |a| and v the unit vector of b's part orthogonal to a, so no
  step divides by sin(Omega): for opposite codes (Omega = pi), where every great circle joins them, v is any
  direction orthogonal to a.
  """
  import numpy as np
  a, b, t = np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(t, np.float64)[:, None]
  norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
  if min(norm_a, norm_b) < 1e-12:  # a code at the origin has no direction: a straight line
    return (1 - t) * a + t * b
  u = a / norm_a
  cosine = float(np.clip(np.dot(u, b / norm_b), -1.0, 1.0))
  omega = math.acos(cosine)
  orthogonal = b / norm_b - cosine * u
  if np.linalg.norm(orthogonal) > 1e-9:
    v = orthogonal / np.linalg.norm(orthogonal)
  elif cosine > 0:  # the same direction: only the norm changes
    v = np.zeros_like(u)
  else:  # opposite directions: turn through the coordinate axis least aligned with a
    axis = np.zeros_like(u)
    axis[np.argmin(np.abs(u))] = 1.0
    v = axis - np.dot(axis, u) * u
    v /= np.linalg.norm(v)
  direction = np.cos(t * omega) * u + np.sin(t * omega) * v     # [T, d], unit vectors
  return ((1 - t) * norm_a + t * norm_b) * direction


def interpolate(a, b, steps):
  """`steps` codes from a to b: linear in 2-d, spherical above. [steps, d]."""
  import numpy as np
  t = np.linspace(0.0, 1.0, steps)
  if len(a) <= 2:
    return (1 - t)[:, None] * np.asarray(a, np.float64) + t[:, None] * np.asarray(b, np.float64)
  return slerp(a, b, t)


def load_export(output_dir):
  """(encoder, decoder, saved flags) of the run in `output_dir`; VAEError with one line if there is none."""
  import keras

  export = os.path.join(output_dir, 'export')
  paths = [os.path.join(export, f'{part}.keras') for part in ('encoder', 'decoder')]
  if not os.path.isdir(output_dir):
    raise VAEError(f'--output_dir {output_dir} does not exist')
  if not all(os.path.isfile(p) for p in paths):
    raise VAEError(f'{output_dir} holds no exported model (export/encoder.keras and export/decoder.keras); train '
                   f'a run there first')
  from vae.run import rundir, user_networks
  saved = rundir.read_saved_flags(rundir.RunPaths(output_dir), hint='restore it from a copy of the run')
  if saved is not None:
    user_networks.load_for_saved_run(saved, output_dir)  # classes of its own that the .keras files name
  try:
    encoder, decoder = (keras.models.load_model(p) for p in paths)
    latent_dim = int(decoder.inputs[0].shape[-1])
    if len(encoder.outputs) != 2 or int(encoder.outputs[0].shape[-1]) != latent_dim:
      raise ValueError('its encoder does not produce the mean and log-variance its decoder takes')
  except Exception as e:  # noqa: BLE001  (any failure here means: not one of our runs)
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise VAEError(f'{output_dir} does not hold a run exported by this project ({reason[:200]})') from None
  if saved is None:
    raise VAEError(f'{output_dir} holds no flags.json beside its export, so which data set it was trained on is '
                   f'unknown; restore it from a copy of the run')
  return encoder, decoder, saved


def explore(output_dir, save_dir, data_dir=None, count=50, pairs=6, steps=10, seed=0, prefix='', log=print):
  """Writes the pictures described in the module docstring; returns their paths."""
  import numpy as np
  from vae import data, preprocess, viz
  from vae.run import gifs
  from vae.run.fileio import ensure_writable_dir

  encoder, decoder, saved = load_export(output_dir)
  latent_dim = int(decoder.inputs[0].shape[-1])
  name = saved.get('dataset', 'mnist')
  from vae.run.config import parse_image_size
  dataset = data.load(name, data.resolve_data_dir(name, data_dir, saved.get('data_dir')),
                      image_size=parse_image_size(saved.get('image_size') or ''))
  shape = dataset.image_shape
  test_images = dataset.test_images
  if 2 * pairs > len(test_images):
    raise VAEError(f'--pairs={pairs} needs {2 * pairs} distinct test images, and the test set has '
                   f'{len(test_images)}; pass --pairs={len(test_images) // 2} or fewer')
  if saved.get('binarize', 'none') != 'none':  # the model was trained on binary pixels: show it the binary test set
    test_images = preprocess.binarized_test_set(test_images)
  ensure_writable_dir(save_dir, 'save directory')
  rng = np.random.default_rng(seed)

  from vae.model import LIKELIHOODS, mean_logits
  likelihood = saved.get('likelihood', 'bernoulli')  # a run saved before the setting existed is a Bernoulli run
  if likelihood not in LIKELIHOODS:
    raise VAEError(f'{output_dir}/flags.json names the likelihood {likelihood!r}, which is none of '
                   f'{", ".join(LIKELIHOODS)}; restore it from a copy of the run')

  def decode(z):  # logits whose sigmoid is the likelihood's mean, what the pictures show (vae/viz.py)
    return np.asarray(mean_logits(decoder(np.asarray(z, np.float32)), likelihood))

  def encode_mean(x):
    return np.asarray(encoder(np.asarray(x, np.float32))[0])

  written = []

  def save(file_name, image):
    path = os.path.join(save_dir, prefix + file_name)
    gifs.save_png(path, image)
    written.append(path)

  save('samples.png', viz.probability_tile(decode(rng.standard_normal((count, latent_dim))), count // COLUMNS,
                                           COLUMNS, shape))
  chosen = rng.choice(len(test_images), size=min(count, len(test_images) // COLUMNS * COLUMNS), replace=False)
  originals = test_images[chosen]
  save('mean_reconstructions.png', viz.reconstruction_frame(originals, decode(encode_mean(originals)), shape))
  ends = encode_mean(test_images[rng.choice(len(test_images), size=2 * pairs, replace=False)])
  paths = np.stack([interpolate(ends[2 * i], ends[2 * i + 1], steps) for i in range(pairs)])   # [pairs, steps, d]
  logits = decode(paths.reshape(pairs * steps, latent_dim))
  save('interpolations.png', viz.probability_tile(logits, pairs, steps, shape))
  per_step = logits.reshape(pairs, steps, -1).swapaxes(0, 1)                                     # [steps, pairs, D]
  there_and_back = list(range(steps)) + list(range(steps - 2, 0, -1))  # the ends once each, as the gif loops
  frames = [viz.probability_tile(per_step[s], 1, pairs, shape) for s in there_and_back]
  gif_path = os.path.join(save_dir, prefix + 'interpolation.gif')
  gifs.write_gif(gif_path, frames, [100] * len(frames), compact_grey=False)  # every step of the path, exactly
  written.append(gif_path)
  log(f'{"spherical" if latent_dim > 2 else "linear"} interpolation in {latent_dim}-d; wrote ' + ', '.join(written))
  return written


def explore_run(flag_values, arguments):
  """The body of `python -m vae.commands.explore`; returns the exit status."""
  del arguments
  if flag_values.count < COLUMNS or flag_values.count % COLUMNS:
    return fail(f'--count must be a positive multiple of {COLUMNS}, got {flag_values.count}')
  if flag_values.pairs < 1:
    return fail(f'--pairs must be a positive integer, got {flag_values.pairs}')
  if flag_values.steps < 2:
    return fail(f'--steps must be at least 2, got {flag_values.steps}')
  if flag_values.seed < 0:
    return fail(f'--seed must be >= 0, got {flag_values.seed}')
  from vae.commands.quiet import import_tensorflow
  import_tensorflow()
  explore(flag_values.output_dir, flag_values.save_dir or os.path.join(flag_values.output_dir, 'explore'),
          flag_values.data_dir, flag_values.count, flag_values.pairs, flag_values.steps, flag_values.seed,
          flag_values.prefix)
  return 0


def main(argv=None):
  return COMMAND.main(explore_run, sys.argv if argv is None else argv)


if __name__ == '__main__':
  sys.exit(main())
