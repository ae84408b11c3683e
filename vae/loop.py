"""The training run: data, model, optimiser, the epoch loop, evaluation, metrics and frames.

`run.py` turns flags into a `Config` and calls `train`; nothing here reads flags. The loop, per epoch:

  1. `updates_per_epoch` Adam steps on -ELBO (vae/train.py), with a progress bar showing the running loss;
  2. the test-set ELBO, rate and distortion over all test images with the fixed evaluation noise;
  3. one row of metrics.csv;
  4. with latent_dim == 2 and do_viz: the spread frame (the first 5000 test images' posterior means, which step 2
     has already computed) and the canvas frame (the fixed latent grid, decoded in one batch).

The fixed things, the evaluation noise and the latent grid, are drawn once before the first epoch, so that every
epoch's numbers and frames are comparable.
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from vae import data, networks, train as train_lib, viz
from vae.errors import VAEError
from vae.fileio import ensure_writable_dir, write_text_atomic
from vae.model import VAE
from vae.progress import ProgressBar

METRICS_HEADER = ('epoch', 'step', 'train_loss', 'test_elbo', 'test_rate', 'test_distortion', 'seconds')


@dataclasses.dataclass(frozen=True)
class Config:
  latent_dim: int = 2
  batch_size: int = 128
  encoder_architecture: str = 'fc'
  decoder_architecture: str = 'fc'
  epochs: int = 100
  updates_per_epoch: int = 100
  data_dir: str = '../mnist'
  do_viz: bool = True
  learning_rate: float = 2e-4
  seed: int = 0
  output_dir: str = '.'


def use_xla(encoder_architecture, decoder_architecture):
  """Whether to compile the training step with XLA.

  Measured on a 2-core CPU: XLA fuses the fc model's element-wise work and Adam update into few kernels and
  speeds its step up; for convolutions its CPU kernels are slower than TensorFlow's own (oneDNN) ones.
  """
  return encoder_architecture == 'fc' and decoder_architecture == 'fc'


def build_model(config):
  keras.utils.set_random_seed(config.seed)  # Weight initialisation derives from the seed.
  encoder = networks.build_encoder(config.encoder_architecture, config.latent_dim)
  decoder = networks.build_decoder(config.decoder_architecture, config.latent_dim)
  return VAE(encoder, decoder)


def train(config, flag_values=None, log=print):
  """Runs the whole training job described by `config`. Returns the last epoch's metrics as a dict.

  Raises:
    VAEError: bad data, no network, an output directory that cannot be written.
  """
  if config.do_viz and config.latent_dim != 2:
    log(f'note: --do_viz draws the 2-d latent space; with --latent_dim={config.latent_dim} no frames are drawn')
  ensure_writable_dir(config.output_dir)
  write_text_atomic(os.path.join(config.output_dir, 'flags.json'),
                    json.dumps(flag_values or dataclasses.asdict(config), indent=2, sort_keys=True) + '\n')

  mnist = data.load_mnist(config.data_dir)
  log(f'MNIST from {config.data_dir}: {len(mnist.train_images):,} training and {len(mnist.test_images):,} '
      f'test images')

  model = build_model(config)
  optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
  train_images = tf.constant(mnist.train_images)
  step_fn = train_lib.make_train_step(model, optimizer, train_images, batch_size=config.batch_size,
                                      seed=config.seed,
                                      jit_compile=use_xla(config.encoder_architecture,
                                                          config.decoder_architecture))
  evaluate = train_lib.make_evaluator(model)
  batches = iter(data.train_batches(len(mnist.train_images), config.batch_size, config.seed))

  # Drawn once, before the loop, so that every epoch is measured and drawn on the same footing.
  eval_eps = train_lib.eval_noise(config.seed, len(mnist.test_images), config.latent_dim)
  draw = config.do_viz and config.latent_dim == 2
  if draw:
    num_spread = min(viz.NUM_SPREAD_POINTS, len(mnist.test_images))
    frames = viz.EpochFrames(config.output_dir, mnist.test_labels[:num_spread])
    grid = tf.constant(viz.latent_grid())
    decode_grid = tf.function(lambda z: model.decode(z))

  metrics_path = os.path.join(config.output_dir, 'metrics.csv')
  rows = [','.join(METRICS_HEADER)]
  step = 0
  last = None
  try:
    for epoch in range(1, config.epochs + 1):
      started = time.perf_counter()
      bar = ProgressBar(f'epoch {epoch}/{config.epochs}', config.updates_per_epoch)
      pending = []
      for i in range(config.updates_per_epoch):
        pending.append(step_fn(next(batches), tf.constant(step, tf.int64)))
        step += 1
        # Reading a loss back waits for its step; doing it every 10 steps lets steps queue up back to back.
        if len(pending) == 10 or i + 1 == config.updates_per_epoch:
          losses = np.array([float(l) for l in pending])
          if not np.all(np.isfinite(losses)):
            raise VAEError(f'the training loss became {losses[~np.isfinite(losses)][0]} at epoch {epoch}, '
                           f'step {step}; try a smaller --learning_rate')
          bar.update(i + 1, losses)
          pending = []
      bar.finish()

      test = evaluate(mnist.test_images, eval_eps)
      seconds = time.perf_counter() - started
      last = {'epoch': epoch, 'step': step, 'train_loss': bar.mean_loss,
              'test_elbo': float(test['elbo'].mean()), 'test_rate': float(test['rate'].mean()),
              'test_distortion': float(test['distortion'].mean()), 'seconds': seconds}
      log(f'  test elbo {last["test_elbo"]:.2f}  rate {last["test_rate"]:.2f}  '
          f'distortion {last["test_distortion"]:.2f}  ({seconds:.1f} s)')
      rows.append(','.join(_format(last[k]) for k in METRICS_HEADER))
      write_text_atomic(metrics_path, '\n'.join(rows) + '\n')
      if draw:
        frames.write(epoch, test['mean'][:num_spread], decode_grid(grid).numpy())

    if draw:
      frames.write_gifs(config.epochs)
      log(f'wrote {os.path.join(config.output_dir, "spread.gif")} and '
          f'{os.path.join(config.output_dir, "canvas.gif")}')
  finally:
    if draw:
      frames.close()
  return last


def _format(value):
  return f'{value:.6g}' if isinstance(value, float) else str(value)
