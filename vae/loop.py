"""The training run: the trainer, the epoch loop, and the re-evaluation of a saved run (`--eval_only`).

`run.py` turns flags into a `Config` and calls `run_training` (or `evaluate_saved_run`); nothing here reads flags.
Each epoch:

  1. `updates_per_epoch` Adam steps on the training objective (vae/engine.py runs vae/train.py's step; -ELBO
     unless --beta, --kl_warmup_steps or --objective say otherwise), with a progress bar of the running loss;
  2. the test-set ELBO, rate and distortion over all test images with the fixed evaluation noise;
  3. one row of metrics.csv and the TensorBoard scalars;
  4. with do_viz: the spread frame (from the posterior means step 2 computed anyway) and the canvas frame (the
     fixed latent grid, decoded in one batch), or samples and reconstructions for any other latent_dim;
  5. a checkpoint: model, optimiser and step counter (the minibatch order is a function of seed and step).

A checkpoint is written after an epoch is complete and its loss was finite, and at the step where a stop signal
arrived (vae/signals.py: the steps under way finish first), with the running loss of the epoch in progress; its
files are written before the index that names them (vae/checkpoints.py), so a run killed at any point restarts
from the newest intact checkpoint. Starting the same command again resumes there; the result equals an
uninterrupted run, because every random number and the minibatch order are functions of (seed, step), and a
resumed epoch makes the very calls of compiled steps an uninterrupted one makes.

At the end: the gifs, a loss-curve plot, the trained encoder and decoder exported as .keras files, and the
importance-weighted log-likelihood estimate (vae/evaluate.py) in evaluation.json.
"""

import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf

from vae import checkpoints, data, engine, evaluate, gifs, inputs, networks, rundir, signals, viz
from vae.config import RESUME_KEYS, RUN_SETTINGS, Config, size_problem
from vae.errors import OutputError, VAEError
from vae.fileio import RunLock, ensure_writable_dir
from vae.model import VAE, reparameterize
from vae.progress import PhaseTimer, ProgressBar

# Training steps per compiled call: enough to make the fixed cost of a call negligible, few enough that the
# progress bar and Ctrl-C respond after a handful of steps.
STEPS_PER_CALL = 10


class Interrupted(VAEError):
  """Ctrl-C: the run stopped; what was completed is kept."""

  exit_status = 130  # 128 + SIGINT, as a shell reports a process Ctrl-C ended


def use_xla(encoder_architecture, decoder_architecture):
  """Whether to compile the training step with XLA: it fuses the fc model's element-wise work and Adam update
  into few kernels, while its CPU convolutions are slower than TensorFlow's own (docs/performance.md)."""
  return encoder_architecture == 'fc' and decoder_architecture == 'fc'


def build_model(config, image_shape=inputs.MNIST_SHAPE):
  keras.utils.set_random_seed(config.seed)  # Weight initialisation derives from the seed.
  encoder = networks.build_encoder(config.encoder_architecture, config.latent_dim, image_shape)
  decoder = networks.build_decoder(config.decoder_architecture, config.latent_dim, image_shape)
  return VAE(encoder, decoder)


class Trainer:
  """The model, its optimiser and step function, and the checkpoint that holds all their state."""

  def __init__(self, config, train_images, checkpoint_dir, image_shape=inputs.MNIST_SHAPE):
    self.config = config
    self.checkpoint_dir = checkpoint_dir
    self.model = build_model(config, image_shape)
    self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    self.train_steps = engine.make_train_steps(
        self.model, self.optimizer, train_images, config,
        jit_compile=use_xla(config.encoder_architecture, config.decoder_architecture))
    self.num_examples = len(train_images)
    self.batches = iter(inputs.train_batch_indices(self.num_examples, config.batch_size, config.seed))
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
    self.batches = iter(inputs.train_batch_indices(self.num_examples, self.config.batch_size, self.config.seed,
                                                   start_step=step))
    return step

  def run_epoch(self, epoch=None, stream=None):
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
      # STEPS_PER_CALL steps run in one compiled call (see engine.make_train_steps), counted from the epoch's
      # start; the epoch's last call takes the remainder, so that an epoch ends exactly where its checkpoint says
      # and a run resumed after a stop makes the very calls an uninterrupted one makes.
      count = min(STEPS_PER_CALL, updates - done)
      indices = tf.stack([next(self.batches) for _ in range(count)])    # [S, B]
      losses = self.train_steps(indices, self.step.read_value()).numpy().astype(np.float64)
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
    import signal
    return (f'stopped by {signal.Signals(signum).name} at step {int(self.step.numpy())} ({where}); the run is '
            f'checkpointed there in {self.checkpoint_dir}. Run the same command again to resume')

  def checkpointed_epochs(self):
    """Complete epochs in the newest checkpoint written, whatever the step counter says now."""
    return (self.saved_step or 0) // self.config.updates_per_epoch

  def save(self):
    step = int(self.step.numpy())
    checkpoints.save(self.checkpoint, self.checkpoint_dir, step)
    self.saved_step = step


def run_training(config, flag_values=None, log=print):
  """Runs (or resumes) the training job described by `config`. Returns the last epoch's metrics as a dict.

  Raises:
    VAEError: bad data, no network, an output directory that cannot be written, a diverged loss, Ctrl-C.
  """
  paths = rundir.RunPaths(config.output_dir)
  # The data comes first: a bad data file is reported before anything in the output directory is touched.
  dataset = data.load(config.dataset, config.data_dir)
  too_large = size_problem(config, len(dataset.train_images), len(dataset.test_images),
                           dataset.train_images.shape[1])
  if too_large:
    raise VAEError(too_large)
  log(f'{dataset.name} from {config.data_dir}: {len(dataset.train_images):,} training and '
      f'{len(dataset.test_images):,} test images of {"x".join(map(str, dataset.image_shape))}, '
      f'binarize={config.binarize}')
  ensure_writable_dir(config.output_dir)
  # Handed over in a one-item list so that this frame holds no reference: the float training images can then
  # be freed once the training step holds its compact copy.
  handover = [dataset]
  del dataset
  with RunLock(config.output_dir):
    return _train_locked(config, paths, handover, flag_values or dataclasses.asdict(config), log)


def _train_locked(config, paths, handover, flag_values, log):
  newest = resume_point(config, paths, flag_values, log)
  if newest == FINISHED:
    log(f'{paths.root} holds the finished run of {config.epochs} epochs: nothing to do (raise --epochs to continue '
        f'it, or pass --eval_only --eval_k=K to estimate its log-likelihood again)')
    return None
  run = TrainingRun(config, paths, handover, flag_values, log, newest)
  try:
    # A stop signal waits for the steps under way (vae/signals.py): the epoch in progress is saved at its step,
    # or, when the signal comes during an epoch's evaluation, frames or checkpoint, at the epoch's end.
    with signals.deferred():
      for epoch in range(run.completed_epochs + 1, config.epochs + 1):
        run.train_epoch(epoch)
        if signals.pending():
          where = f'after epoch {epoch} of {config.epochs}'
          raise signals.Stopped(signals.pending(), run.trainer.stop_line(signals.pending(), where), saved=True)
  except (signals.Stopped, KeyboardInterrupt) as e:
    if isinstance(e, signals.Stopped) and e.saved:
      raise
    # A second signal, or Ctrl-C without vae/cli.py's handlers: the newest checkpoint, not the step counter,
    # says what is kept.
    completed = run.trainer.checkpointed_epochs()
    line = (f'{completed} of {config.epochs} epochs are complete and checkpointed in {paths.checkpoints}. Run the '
            f'same command again to resume')
    if isinstance(e, KeyboardInterrupt):
      raise Interrupted(f'interrupted; {line}') from None
    raise signals.Stopped(e.signum, f'{e}; {line}', saved=True) from None
  finally:
    run.close_epochs()
  try:
    return run.finish()
  except signals.Stopped as e:
    raise signals.Stopped(e.signum, f'{e} while finishing the run; all {config.epochs} epochs are checkpointed in '
                                    f'{paths.checkpoints}. Run the same command again to finish it',
                          saved=True) from None


FINISHED = 'finished'


def resume_point(config, paths, flag_values, log):
  """The newest intact checkpoint (step, prefix) to resume from, None to start afresh, or FINISHED; checked
  before any file of the directory is written, on the same view of it the restore then uses.

  Refuses (VAEError, one line) a directory that holds a run this one cannot continue: flags that a resume must
  match changed, more epochs than --epochs, metrics without the checkpoints they belong to.
  """
  if config.fresh:
    return None
  newest = checkpoints.newest_intact(paths.checkpoints, log)
  rows = rundir.read_metrics(paths.metrics)
  held = newest[0] // config.updates_per_epoch if newest else 0
  if newest is None and len(rows) > 1:
    raise VAEError(f'{paths.root} holds metrics.csv with {len(rows)} epochs but no checkpoint to resume from; '
                   f'restore its checkpoints/ from a copy, or pass --fresh to start over (this deletes its '
                   f'metrics and frames)')
  if newest is None:
    return None
  rundir.check_resumable(paths, flag_values)
  step, total = newest[0], config.epochs * config.updates_per_epoch
  if step > total:
    raise VAEError(f'{paths.root} holds a run trained for {step} steps ({held} epochs of '
                   f'{config.updates_per_epoch}), more than --epochs={config.epochs} asks for; pass '
                   f'--epochs={-(-step // config.updates_per_epoch)} or more to continue it, or --fresh to start over')
  if len(rows) < held:
    raise VAEError(f'{paths.metrics} holds {len(rows)} epochs but the checkpoint {newest[1]} holds {held}; restore '
                   f'metrics.csv from a copy, or pass --fresh to start over')
  if step == total and rundir.read_evaluation(paths) is not None:
    return FINISHED
  return newest


class TrainingRun:
  """One run in its output directory, in three parts: set up and restored (`__init__`), trained one epoch at a
  time (`train_epoch`), and finished (`finish`: gifs, loss curve, export, the final estimate)."""

  def __init__(self, config, paths, handover, flag_values, log, newest):
    """Clears the directory (--fresh), builds the trainer and restores the checkpoint `newest` (of
    `resume_point`), writes flags.json, and prepares what every epoch evaluates and draws on the same footing."""
    dataset = handover.pop()
    self.config, self.paths, self.log = config, paths, log
    if config.fresh:
      rundir.clear_run(paths)
    # Same seed and flags, same numbers: deterministic kernels (on CPU this costs little).
    tf.config.experimental.enable_op_determinism()

    train_images, self.test_images = inputs.prepare_images(dataset, config.binarize, config.seed)
    self.trainer = Trainer(config, train_images, paths.checkpoints, dataset.image_shape)
    del train_images
    self.dataset = dataset._replace(train_images=None)  # the trainer holds its compact copy
    step = self.trainer.restore(newest)
    updates = config.updates_per_epoch
    self.completed_epochs = step // updates
    if step and step % updates:
      log(f'resuming at step {step} ({step % updates} of the {updates} steps of epoch {self.completed_epochs + 1} '
          f'done) from {paths.checkpoints}')
    elif step:
      log(f'resuming after epoch {self.completed_epochs} (step {step}) from {paths.checkpoints}')
    # Written once the checkpoint is known to fit the flags, so that a refused resume leaves it as it was.
    rundir.write_json(paths.flags, flag_values)
    self.rows = rundir.read_metrics(paths.metrics)[:self.completed_epochs]

    # Drawn once, before the loop, so that every epoch is measured and drawn on the same footing.
    model = self.trainer.model
    self.evaluate_fn = evaluate.make_evaluator(model)
    self.eval_eps = evaluate.eval_noise(config.seed, len(self.test_images), config.latent_dim)
    self.frames = None
    self.test = None  # the last epoch's test terms, reused by the final evaluation
    if config.do_viz:
      self.num_spread = min(viz.NUM_SPREAD_POINTS, len(self.test_images))
      self.frames = viz.EpochFrames(config.output_dir, dataset.test_labels[:self.num_spread], config.latent_dim,
                                    dataset.class_names)
      self.fixed_inputs = viz.fixed_frame_inputs(config.latent_dim, config.seed, self.test_images)
      self.decode = tf.function(model.decode, reduce_retracing=True)
      self.reconstruct = tf.function(lambda x, eps: model.decode(reparameterize(*model.encode(x), eps)),
                                     reduce_retracing=True)
    self.summaries = tf.summary.create_file_writer(paths.tensorboard)
    self.timer = PhaseTimer()

  def train_epoch(self, epoch):
    """Epoch `epoch`: its steps, the test evaluation, its metrics row and summaries, its frames, its checkpoint."""
    config, timer, trainer = self.config, self.timer, self.trainer
    started = time.perf_counter()
    with timer('training steps'):
      train_loss = trainer.run_epoch(epoch)
    with timer('test evaluation'):
      test = self.test = self.evaluate_fn(self.test_images, self.eval_eps)
    last = {'dataset': self.dataset.name, 'objective': config.objective, 'train_k': config.train_k, 'epoch': epoch,
            'step': int(trainer.step.numpy()), 'train_loss': train_loss,
            'test_elbo': float(test['elbo'].mean()), 'test_rate': float(test['rate'].mean()),
            'test_distortion': float(test['distortion'].mean()),
            'active_units': evaluate.active_units(test['mean']), 'seconds': time.perf_counter() - started}
    self.log(f'  test elbo {last["test_elbo"]:.2f}  rate {last["test_rate"]:.2f}  '
             f'distortion {last["test_distortion"]:.2f}  active units {last["active_units"]}/{config.latent_dim}  '
             f'({last["seconds"]:.1f} s)')
    self.rows.append(last)
    grids = {}
    if self.frames:
      with timer('frame rendering'):
        grids = viz.decode_frames(self.decode, self.reconstruct, self.fixed_inputs, self.dataset.image_shape)
        self.frames.write(epoch, test['mean'][:self.num_spread], grids)
    with timer('metrics and summaries'):
      rundir.write_metrics(self.paths.metrics, self.rows)
      with self.summaries.as_default(step=last['step']):
        for key in ('train_loss', 'test_elbo', 'test_rate', 'test_distortion', 'active_units'):
          tf.summary.scalar(key, last[key])
        for j, value in enumerate(evaluate.mean_rate_per_dimension(test['rate_per_dimension'])):
          tf.summary.scalar(f'rate_per_dimension/z{j}', value)
        for kind, image in grids.items():  # [1, H, W, 1] grey or [1, H, W, 3] colour
          tf.summary.image(kind, image.reshape(1, image.shape[0], image.shape[1], -1))
    with timer('checkpointing'):
      trainer.save()

  def close_epochs(self):
    """After the last epoch, or an interruption: the spread figure closed, the summaries flushed."""
    if self.frames:
      self.frames.close()
    self.summaries.flush()

  def finish(self):
    """The end of a run: gifs, loss curve, export, the final estimate in evaluation.json, timings.json. Returns
    the last epoch's metrics row."""
    config, paths, timer, model = self.config, self.paths, self.timer, self.trainer.model
    if self.frames:
      with timer('gif writing'):
        written = self.frames.write_gifs(config.epochs)
      self.log('wrote ' + ', '.join(written))
    with timer('loss curve and export'):
      if self.rows:  # drawn from metrics.csv as written, so that a resumed run draws what an uninterrupted one does
        written = rundir.read_metrics(paths.metrics, up_to_epoch=config.epochs)
        gifs.save_png(paths.loss_curve, viz.plot_metrics(written))
      rundir.export_model(model, paths.export)
    self.log(f'exported the encoder and decoder to {paths.export}/')
    with timer('final log-likelihood estimate'):
      final = final_evaluation(model, self.test_images, config, self.evaluate_fn, self.eval_eps, self.log,
                               elbo=self.test)
    with self.summaries.as_default(step=int(self.trainer.step.numpy())):
      tf.summary.scalar(f'test_log_likelihood_k{config.eval_k}', final['test_log_likelihood'])
    self.summaries.close()
    rundir.write_json(paths.evaluation, final)
    rundir.write_json(paths.timings, {'seconds': timer.seconds, 'first_step_unix_time': self.trainer.first_step_time})
    return self.rows[-1] if self.rows else None


def final_evaluation(model, test_images, config, evaluate_fn, eval_eps, log, elbo=None):
  """The test ELBO (fixed noise) and the k-sample importance-weighted log-likelihood estimate.

  `elbo`: the evaluator's result for this very model, when the last epoch has just computed it.
  """
  log(f'estimating log p(x) on {len(test_images):,} test images with k={config.eval_k} importance samples')
  started = time.perf_counter()
  if elbo is None:
    elbo = evaluate_fn(test_images, eval_eps)
  log_likelihood = evaluate.iwae_log_likelihood(model, test_images, config.eval_k, config.seed)
  # The true ELBO terms (rate weight 1), whatever --beta and --kl_warmup_steps trained with, and every setting
  # that defines the trained model (those a resume must match).
  result = {**{key: getattr(config, key) for key in RESUME_KEYS}, 'test_elbo': float(elbo['elbo'].mean()),
            'test_rate': float(elbo['rate'].mean()), 'test_distortion': float(elbo['distortion'].mean()),
            'active_units': evaluate.active_units(elbo['mean']),
            'rate_per_dimension': [float(r) for r in evaluate.mean_rate_per_dimension(elbo['rate_per_dimension'])],
            'test_log_likelihood': float(log_likelihood.mean()), 'eval_k': config.eval_k,
            'num_test_images': len(test_images), 'seconds': time.perf_counter() - started}
  log(f'test elbo {result["test_elbo"]:.2f}, log-likelihood (IWAE, k={config.eval_k}) '
      f'{result["test_log_likelihood"]:.2f} nats, active units {result["active_units"]}/{config.latent_dim}  '
      f'({result["seconds"]:.1f} s)')
  return result


def evaluate_saved_run(output_dir, eval_k, data_dir=None, log=print):
  """--eval_only: restores the run in `output_dir` and re-estimates its test ELBO and log-likelihood.

  Takes the run lock, as training does, so that it never overwrites evaluation.json under a training run, nor a
  training run under it.
  """
  paths = rundir.RunPaths(output_dir)
  if not os.path.isdir(output_dir):
    raise VAEError(f'{output_dir} holds no trained run (it does not exist); train one there first')
  with RunLock(output_dir):
    saved = rundir.read_saved_flags(paths, hint='restore it from a copy of the run')
    newest = checkpoints.newest_intact(paths.checkpoints, log)
    if saved is None or newest is None:
      raise VAEError(f'{output_dir} holds no trained run (no flags.json or no checkpoint); train one there first')
    run_config = Config(**{k: v for k, v in saved.items() if k in RUN_SETTINGS})
    config = dataclasses.replace(run_config, eval_k=eval_k, output_dir=output_dir,
                                 data_dir=data.resolve_data_dir(run_config.dataset, data_dir, saved.get('data_dir')))
    dataset = data.load(config.dataset, config.data_dir)
    _, test_images = inputs.prepare_images(dataset, config.binarize, config.seed)
    model = build_model(config, dataset.image_shape)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
    # Only the networks and the step are needed; the optimiser state is left alone.
    checkpoints.restore(tf.train.Checkpoint(encoder=model.encoder, decoder=model.decoder, step=step), newest[1],
                        partial=True)
    log(f'restored {newest[1]} (step {int(step.numpy())})')
    evaluate_fn = evaluate.make_evaluator(model)
    eval_eps = evaluate.eval_noise(config.seed, len(test_images), config.latent_dim)
    final = final_evaluation(model, test_images, config, evaluate_fn, eval_eps, log)
    rundir.write_json(paths.evaluation, final)
    return final
