"""The training run: its epochs, from a fresh start or a resumed checkpoint to the last one.

`run.py` turns flags into a `Config` and calls `start_or_resume`; nothing here reads flags. Each epoch:

  1. `updates_per_epoch` Adam steps on the training objective (vae/run/state.py, which runs vae/train.py's step
     through vae/run/engine.py; -ELBO unless --beta, --kl_warmup_steps or --objective say otherwise), with a
     progress bar of the running loss;
  2. the test-set ELBO, rate and distortion over all test images with the fixed evaluation noise;
  3. one row of metrics.csv and the TensorBoard scalars;
  4. with do_viz: the spread frame (from the posterior means step 2 computed anyway) and the canvas frame (the
     fixed latent grid, decoded in one batch), or samples and reconstructions for any other latent_dim
     (vae/run/frames.py);
  5. a checkpoint: model, optimiser and step counter (the minibatch order is a function of seed and step).

A checkpoint is written after an epoch is complete and its loss was finite, and at the step where a stop signal
arrived (vae/run/signals.py: the steps under way finish first), with the running loss of the epoch in progress;
its files are written before the index that names them (vae/run/checkpoints.py), so a run killed at any point
restarts from the newest intact checkpoint. Starting the same command again resumes there (vae/run/resume.py
checks that it may); the result equals an uninterrupted run, because every random number and the minibatch order
are functions of (seed, step), and a resumed epoch makes the very calls of compiled steps an uninterrupted one
makes.

At the end, vae/run/outputs.py writes the gifs, the loss curve, the export and the record of vae/run/record.py.
"""

import dataclasses
import time

import tensorflow as tf

from vae import data, evaluate, networks, preprocess, viz
from vae.commands.errors import VAEError
from vae.model import reparameterize
from vae.run import frames, outputs, rundir, signals, user_networks
from vae.run.config import parse_image_size, size_problem
from vae.run.fileio import RunLock, ensure_writable_dir
from vae.run.progress import PhaseTimer
from vae.run.resume import FINISHED, resume_point
from vae.run.state import TrainingState


class Interrupted(VAEError):
  """Ctrl-C: the run stopped; what was completed is kept."""

  exit_status = 130  # 128 + SIGINT, as a shell reports a process Ctrl-C ended


def start_or_resume(config, flag_values=None, log=print):
  """Starts, or resumes, the training run described by `config` in its output directory. Returns the last epoch's
  metrics as a dict.

  Raises:
    VAEError: bad data, no network, an output directory that cannot be written, a diverged loss, Ctrl-C.
  """
  paths = rundir.RunPaths(config.output_dir)
  # The data comes first: a bad data file is reported before anything in the output directory is touched.
  dataset = data.load(config.dataset, config.data_dir, image_size=parse_image_size(config.image_size))
  flag_values = flag_values or dataclasses.asdict(config)
  if dataset.fingerprint:  # images of one's own: a resumed run must find the same ones
    flag_values = dict(flag_values, data_fingerprint=dataset.fingerprint)
  for which in ('encoder', 'decoder'):
    architecture = getattr(config, f'{which}_architecture')
    misfit = networks.shape_problem(which, architecture, dataset.image_shape)
    if misfit:
      raise VAEError(f'--{which}_architecture={architecture} does not fit the images of {config.data_dir}: {misfit}')
  weights, row_values = user_networks.check_pair(config, dataset.image_shape)
  too_large = size_problem(config, len(dataset.train_images), len(dataset.test_images),
                           dataset.train_images.shape[1], weights, row_values)
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
    return _train_locked(config, paths, handover, flag_values, log)


def _train_locked(config, paths, handover, flag_values, log):
  newest = resume_point(config, paths, flag_values, log)
  if newest == FINISHED:
    log(f'{paths.root} holds the finished run of {config.epochs} epochs: nothing to do (raise --epochs to continue '
        f'it, or pass --eval_only --eval_k=K to estimate its log-likelihood again)')
    return None
  run = EpochLoop(config, paths, handover, flag_values, log, newest)
  try:
    # A stop signal waits for the steps under way (vae/run/signals.py): the epoch in progress is saved at its step,
    # or, when the signal comes during an epoch's evaluation, frames or checkpoint, at the epoch's end.
    with signals.deferred():
      for epoch in range(run.completed_epochs + 1, config.epochs + 1):
        run.complete_epoch(epoch)
        if signals.pending():
          where = f'after epoch {epoch} of {config.epochs}'
          raise signals.Stopped(signals.pending(), run.state.stop_line(signals.pending(), where), saved=True)
  except (signals.Stopped, KeyboardInterrupt) as e:
    if isinstance(e, signals.Stopped) and e.saved:
      raise
    # A second signal, or Ctrl-C without vae/commands/cli.py's handlers: the newest checkpoint, not the step counter,
    # says what is kept.
    completed = run.state.checkpointed_epochs()
    line = (f'{completed} of {config.epochs} epochs are complete and checkpointed in {paths.checkpoints}. Run the '
            f'same command again to resume')
    if isinstance(e, KeyboardInterrupt):
      raise Interrupted(f'interrupted; {line}') from None
    raise signals.Stopped(e.signum, f'{e}; {line}', saved=True) from None
  finally:
    run.close()
  try:
    return outputs.finish(run)
  except signals.Stopped as e:
    raise signals.Stopped(e.signum, f'{e} while finishing the run; all {config.epochs} epochs are checkpointed in '
                                    f'{paths.checkpoints}. Run the same command again to finish it',
                          saved=True) from None


class EpochLoop:
  """One run in its output directory: set up and restored (`__init__`), then trained one epoch at a time
  (`complete_epoch`); vae/run/outputs.py's `finish` ends it."""

  def __init__(self, config, paths, handover, flag_values, log, newest):
    """Clears the directory (--fresh), builds the training state and restores the checkpoint `newest` (of
    `resume_point`), writes flags.json, and prepares what every epoch evaluates and draws on the same footing."""
    dataset = handover.pop()
    self.config, self.paths, self.log = config, paths, log
    if config.fresh:
      rundir.clear_run(paths)
    train_images, self.test_images = preprocess.prepare_images(dataset, config.binarize, config.seed)
    self.state = TrainingState(config, train_images, paths.checkpoints, dataset.image_shape)
    del train_images
    self.dataset = dataset._replace(train_images=None)  # the training state holds its compact copy
    step = self.state.restore(newest)
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
    model = self.state.model
    self.evaluate_fn = evaluate.make_evaluator(model)
    self.eval_eps = evaluate.eval_noise(config.seed, len(self.test_images), config.latent_dim)
    self.frames = None
    self.test = None  # the last epoch's test terms, reused by the final evaluation
    if config.do_viz:
      self.num_spread = min(viz.NUM_SPREAD_POINTS, len(self.test_images))
      self.frames = frames.EpochFrames(config.output_dir, dataset.test_labels[:self.num_spread], config.latent_dim,
                                    dataset.class_names)
      self.fixed_inputs = viz.fixed_frame_inputs(config.latent_dim, config.seed, self.test_images)
      # The pictures show the likelihood's mean E[x | z] (as logits, for vae/viz.py's sigmoid).
      self.decode = tf.function(model.decode_mean_logits, reduce_retracing=True, autograph=False)
      self.reconstruct = tf.function(lambda x, eps: model.decode_mean_logits(reparameterize(*model.encode(x), eps)),
                                     reduce_retracing=True, autograph=False)
    self.summaries = tf.summary.create_file_writer(paths.tensorboard)
    self.timer = PhaseTimer()

  def complete_epoch(self, epoch):
    """Epoch `epoch`: its steps, the test evaluation, its metrics row and summaries, its frames, its checkpoint."""
    config, timer, state = self.config, self.timer, self.state
    started = time.perf_counter()
    with timer('training steps'):
      train_loss = state.take_epoch_steps(epoch)
    with timer('test evaluation'):
      test = self.test = self.evaluate_fn(self.test_images, self.eval_eps)
    last = {'dataset': self.dataset.name, 'objective': config.objective, 'train_k': config.train_k, 'epoch': epoch,
            'step': int(state.step.numpy()), 'train_loss': train_loss,
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
      state.save()

  def close(self):
    """After the last epoch, or an interruption: the spread figure closed, the summaries flushed."""
    if self.frames:
      self.frames.close()
    self.summaries.flush()
