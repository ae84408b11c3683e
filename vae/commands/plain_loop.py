"""`vae-plain-loop` (or `python -m vae.commands.plain_loop`): vae/train.py's `train_loop` run on MNIST.

    vae-plain-loop --data_dir=../mnist           # the default fc VAE, 10,000 steps of 128, then the test ELBO
    vae-plain-loop --eager --steps=20            # every step op by op, for a debugger

Loads MNIST with vae/data.py, builds the default fc VAE, trains it with `train_loop` (traced into a graph, or
eagerly with --eager), prints the test ELBO of vae/evaluate.py and saves one picture: the decoded 15x15 canvas
over the latent plane with --latent_dim=2, 100 prior samples otherwise. Nothing else: no checkpoints, no resume,
no frames (run.py's). Its command line is checked before TensorFlow starts, as every entry point's
(vae/commands/cli.py).
"""

import dataclasses
import os
import sys
import time

from absl import flags

from vae.commands import cli
from vae.run import config as config_lib
from vae import data
from vae.commands.errors import fail

SETTINGS = ('data_dir', 'batch_size', 'latent_dim', 'learning_rate', 'seed', 'beta', 'kl_warmup_steps', 'train_k',
            'objective')

COMMAND = cli.Command('python -m vae.commands.plain_loop', 'train_loop of vae/train.py on MNIST with the default fc '
                      'VAE: the test ELBO at the end, and one picture.', script='vae-plain-loop')
config_lib.define_flags(COMMAND.flags, SETTINGS, help_for={
    'data_dir': 'Where the four MNIST IDX files are (.gz or uncompressed); downloaded into it if missing.',
    'latent_dim': 'Size of the latent code z. With 2 the picture is the decoded canvas over the latent plane; '
                  'with more, 100 samples from the prior.',
})
flags.DEFINE_integer('steps', config_lib.Config.epochs * config_lib.Config.updates_per_epoch,
                     'Training steps (the default is run.py\'s 100 epochs of 100).', flag_values=COMMAND.flags)
flags.DEFINE_boolean('eager', False, 'Run every step in Python, op by op, instead of as one traced graph: a '
                     'breakpoint in train_step, vae/objectives.py or VAE.terms then sees concrete tensors at every '
                     'step. Slower (docs/running.md).', flag_values=COMMAND.flags)
flags.DEFINE_string('picture', 'plain_loop.png', 'Where to save the picture (a .png file): the decoded 15x15 grid '
                    'over the latent plane with --latent_dim=2, 100 prior samples otherwise.',
                    flag_values=COMMAND.flags)


def train_on_mnist(flag_values, arguments):
  """The body of `vae-plain-loop`; returns the exit status."""
  del arguments
  config = dataclasses.replace(config_lib.Config(), **{name: flag_values[name].value for name in SETTINGS})
  problem = config_lib.problem(config) or (
      f'--steps must be a positive integer, got {flag_values.steps}' if flag_values.steps < 1 else None)
  if problem:
    return fail(problem)
  picture_path = flag_values.picture
  if os.path.isdir(picture_path):
    return fail(f'--picture {picture_path} is a directory; name a .png file to write')
  data_dir = data.resolve_data_dir('mnist', flag_values.data_dir if cli.was_given(flag_values, 'data_dir') else None)
  from vae.run.fileio import ensure_writable_dir
  ensure_writable_dir(os.path.dirname(picture_path) or '.', what='picture directory')

  from vae.commands.quiet import import_tensorflow
  import_tensorflow()
  import keras
  import numpy as np

  from vae import evaluate, networks, viz
  from vae.run import gifs
  from vae.model import VAE
  from vae.train import train_loop

  mnist = data.load('mnist', data_dir)
  print(f'MNIST from {data_dir}: {len(mnist.train_images):,} training and {len(mnist.test_images):,} test '
        f'images; {flag_values.steps:,} steps of {config.batch_size}' + (', eagerly' if flag_values.eager else ''))
  keras.utils.set_random_seed(config.seed)  # the initial weights
  model = VAE(networks.build_encoder('fc', config.latent_dim), networks.build_decoder('fc', config.latent_dim))
  optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)

  started = time.perf_counter()
  # Ctrl-C here ends the command with one line (vae/commands/cli.py): nothing is saved during the loop, so nothing
  # is lost but the training.
  train_loop(model, optimizer, mnist.train_images, flag_values.steps, config.batch_size, config.seed,
             config.beta, config.kl_warmup_steps, config.objective, config.train_k, eager=flag_values.eager,
             log_every=500)
  seconds = time.perf_counter() - started

  test = evaluate.make_evaluator(model)(mnist.test_images,
                                         evaluate.eval_noise(config.seed, len(mnist.test_images), config.latent_dim))
  print(f'test elbo {test["elbo"].mean():.2f}  rate {test["rate"].mean():.2f}  distortion '
        f'{test["distortion"].mean():.2f}  ({seconds:.0f} s of training)')

  if config.latent_dim == 2:
    picture = viz.canvas_frame(model.decode(viz.latent_grid()).numpy())
  else:
    prior = np.random.default_rng(config.seed).normal(size=(100, config.latent_dim)).astype(np.float32)
    picture = viz.probability_tile(model.decode(prior).numpy(), 10, 10)
  gifs.save_png(picture_path, picture)
  print(f'wrote {picture_path}')
  return 0


def main(argv=None):
  return COMMAND.main(train_on_mnist, sys.argv if argv is None else argv)


if __name__ == '__main__':
  sys.exit(main())
