"""The training state of a run: model, optimiser, compiled steps and step counter, and the steps of one epoch.

`TrainingState` holds everything a checkpoint saves (the minibatch order and the noise are functions of the seed
and the step, so the step counter is all the data state there is), takes an epoch's steps ten to a compiled call
(vae/run/engine.py), stops at a step when a stop signal arrived (vae/run/signals.py), and refuses a non-finite
loss before anything is saved.
"""

import signal
import time

import keras
import numpy as np
import tensorflow as tf

from vae import networks, preprocess
from vae.commands.errors import VAEError
from vae.model import VAE
from vae.run import checkpoints, engine, signals
from vae.run.progress import ProgressBar

# Training steps per compiled call: enough to make the fixed cost of a call negligible, few enough that the
# progress bar and Ctrl-C respond after a handful of steps.
STEPS_PER_CALL = 10


def use_xla(encoder_architecture, decoder_architecture):
  """Whether to compile the training step with XLA: as the pair was registered (vae/networks.py's use_xla)."""
  return networks.use_xla(encoder_architecture, decoder_architecture)


def build_networks(config, image_shape=preprocess.MNIST_SHAPE):
  """(encoder, decoder) of `config`, their initial weights derived from its seed."""
  keras.utils.set_random_seed(config.seed)
  encoder = networks.build_encoder(config.encoder_architecture, config.latent_dim, image_shape)
  decoder = networks.build_decoder(config.decoder_architecture, config.latent_dim, image_shape)
  return encoder, decoder


def build_model(config, image_shape=preprocess.MNIST_SHAPE):
  return VAE(*build_networks(config, image_shape), likelihood=config.likelihood)


class TrainingState:
  """The model, its optimiser, its compiled steps and the step counter, and the checkpoint that holds them all."""

  def __init__(self, config, train_images, checkpoint_dir, image_shape=preprocess.MNIST_SHAPE):
    self.config = config
    self.checkpoint_dir = checkpoint_dir
    self.model = build_model(config, image_shape)
    self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    self.compiled_steps = engine.compile_steps(
        self.model, self.optimizer, train_images, config,
        jit_compile=use_xla(config.encoder_architecture, config.decoder_architecture))
    self.num_examples = len(train_images)
    self.batches = iter(preprocess.train_batch_indices(self.num_examples, config.batch_size, config.seed))
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
    # The sum of the training losses of the epoch in progress: 0 at an epoch's end, and what a checkpoint saved
    # mid-epoch (on a stop signal) needs for that epoch's mean loss in metrics.csv.
    self.epoch_loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False, name='epoch_loss_sum')
    # The minibatch order is a function of (seed, step), so the step counter is all the data state there is.
    self.checkpoint = tf.train.Checkpoint(encoder=self.model.encoder, decoder=self.model.decoder,
                                          optimizer=self.optimizer, step=self.step,
                                          epoch_loss_sum=self.epoch_loss_sum)
    self.saved_step = None  # the step of the newest checkpoint on disk
    self.first_step_time = None  # wall-clock time of the first training step, for start-up measurements

  def restore(self, newest):
    """Restores the checkpoint `newest` = (step, prefix) of `checkpoints.newest_intact`, if any; returns the
    global step it holds (0 without one)."""
    checkpoints.remove_temporaries(self.checkpoint_dir)
    if newest is None:
      return 0
    step, checkpoint_prefix = newest
    checkpoint = self.checkpoint
    if not tf.train.load_checkpoint(checkpoint_prefix).has_tensor('epoch_loss_sum/.ATTRIBUTES/VARIABLE_VALUE'):
      # A checkpoint without the epoch's running loss is one written at an epoch's end: nothing to carry over.
      checkpoint = tf.train.Checkpoint(encoder=self.model.encoder, decoder=self.model.decoder,
                                       optimizer=self.optimizer, step=self.step)
    checkpoints.restore(checkpoint, checkpoint_prefix)
    self.saved_step = step
    self.batches = iter(preprocess.train_batch_indices(self.num_examples, self.config.batch_size, self.config.seed,
                                                   start_step=step))
    return step

  def take_epoch_steps(self, epoch=None, stream=None):
    """The steps of epoch `epoch` (1, 2, ...; by default the one the step counter is in) not yet taken; returns the
    epoch's mean training loss.

    Raises VAEError on a non-finite loss, and `signals.Stopped` after saving a checkpoint at the current step when
    a stop signal arrived during the steps (the caller runs this inside `signals.deferred()`).
    """
    config = self.config
    updates = config.updates_per_epoch
    if epoch is None:
      epoch = int(self.step.numpy()) // updates + 1
    label = f'epoch {epoch}/{config.epochs}'
    done = int(self.step.numpy()) - (epoch - 1) * updates  # > 0 when resuming mid-epoch
    bar = ProgressBar(label, updates, stream=stream, done=done, loss_sum=float(self.epoch_loss_sum.numpy()))
    if self.first_step_time is None:
      self.first_step_time = time.time()
    while done < updates:
      # STEPS_PER_CALL steps run in one compiled call (see engine.compile_steps), counted from the epoch's
      # start; the epoch's last call takes the remainder, so that an epoch ends exactly where its checkpoint says
      # and a run resumed after a stop makes the very calls an uninterrupted one makes.
      count = min(STEPS_PER_CALL, updates - done)
      indices = tf.stack([next(self.batches) for _ in range(count)])    # [S, B]
      losses = self.compiled_steps(indices, self.step.read_value()).numpy().astype(np.float64)
      if not np.all(np.isfinite(losses)):
        bad = int(np.argmax(~np.isfinite(losses)))
        # The parameters are not saved until the epoch ends, so the last checkpoint is untouched.
        raise VAEError(f'the training loss became {losses[bad]} at {label}, step '
                       f'{int(self.step.numpy()) + bad + 1}; the last checkpoint (before this epoch) is kept. '
                       f'Try a smaller --learning_rate')
      self.step.assign_add(count)
      done += count
      bar.update(done, losses)
      if signals.pending() and done < updates:
        self.epoch_loss_sum.assign(bar.loss_sum)
        bar.finish()
        self.save()
        where = f'{done} of the {updates} steps of epoch {epoch} done'
        raise signals.Stopped(signals.pending(), self.stop_line(signals.pending(), where), saved=True)
    bar.finish()
    self.epoch_loss_sum.assign(0.0)
    return bar.mean_loss

  def stop_line(self, signum, where):
    """The one line a stop signal ends the run with, once the checkpoint of the current step is saved."""
    return (f'stopped by {signal.Signals(signum).name} at step {int(self.step.numpy())} ({where}); the run is '
            f'checkpointed there in {self.checkpoint_dir}. Run the same command again to resume')

  def checkpointed_epochs(self):
    """Complete epochs in the newest checkpoint written, whatever the step counter says now."""
    return (self.saved_step or 0) // self.config.updates_per_epoch

  def save(self):
    step = int(self.step.numpy())
    checkpoints.save(self.checkpoint, self.checkpoint_dir, step)
    self.saved_step = step
