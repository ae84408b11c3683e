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

A checkpoint is written only after an epoch is complete and its loss was finite, and the checkpoint files are
written before the index that names them, so a run killed at any point restarts from the last complete epoch.
Starting the same command again resumes there; the result equals an uninterrupted run, because every random
number and the minibatch order are functions of (seed, step).

At the end: the gifs, a loss-curve plot, the trained encoder and decoder exported as .keras files, and the
importance-weighted log-likelihood estimate (vae/evaluate.py) in evaluation.json.
"""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from vae import data, engine, evaluate, gifs, inputs, networks, rundir, viz
from vae.config import RESUME_KEYS, Config
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
    self.model = build_model(config, image_shape)
    self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    self.train_steps = engine.make_train_steps(
        self.model, self.optimizer, train_images, config,
        jit_compile=use_xla(config.encoder_architecture, config.decoder_architecture))
    self.num_examples = len(train_images)
    self.batches = iter(inputs.train_batch_indices(self.num_examples, config.batch_size, config.seed))
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
    # The minibatch order is a function of (seed, step), so the step counter is all the data state there is.
    self.checkpoint = tf.train.Checkpoint(encoder=self.model.encoder, decoder=self.model.decoder,
                                          optimizer=self.optimizer, step=self.step)
    self.manager = tf.train.CheckpointManager(self.checkpoint, checkpoint_dir, max_to_keep=2)
    self.first_step_time = None  # wall-clock time of the first training step, for start-up measurements

  def restore(self):
    """Restores the latest checkpoint, if any; returns the number of completed epochs."""
    latest = self.manager.latest_checkpoint
    if latest is None:
      return 0
    try:
      self.checkpoint.restore(latest).assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as e:
      raise VAEError(f'cannot restore checkpoint {latest} ({str(e).splitlines()[0]}); pass --fresh to start '
                     f'over') from None
    step = int(self.step.numpy())
    self.batches = iter(inputs.train_batch_indices(self.num_examples, self.config.batch_size, self.config.seed,
                                             start_step=step))
    return step // self.config.updates_per_epoch

  def run_epoch(self, label, stream=None):
    """`updates_per_epoch` steps; returns the mean training loss. Raises VAEError on a non-finite loss."""
    updates = self.config.updates_per_epoch
    bar = ProgressBar(label, updates, stream=stream)
    if self.first_step_time is None:
      self.first_step_time = time.time()
    done = 0
    while done < updates:
      # STEPS_PER_CALL steps run in one compiled call (see engine.make_train_steps); the epoch's last call
      # takes the remainder, so that an epoch ends exactly where its checkpoint says.
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
    bar.finish()
    return bar.mean_loss

  def checkpointed_epochs(self):
    """Epochs in the latest checkpoint written (each is named by its step), whatever the step counter says now."""
    latest = self.manager.latest_checkpoint
    return int(latest.rsplit('-', 1)[1]) // self.config.updates_per_epoch if latest else 0

  def save(self):
    try:
      self.manager.save(checkpoint_number=int(self.step.numpy()))
    except (tf.errors.OpError, OSError) as e:
      raise OutputError(f'cannot write a checkpoint into {self.manager.directory}: '
                        f'{str(e).splitlines()[0]}; the previous checkpoint is kept') from None


def run_training(config, flag_values=None, log=print):
  """Runs (or resumes) the training job described by `config`. Returns the last epoch's metrics as a dict.

  Raises:
    VAEError: bad data, no network, an output directory that cannot be written, a diverged loss, Ctrl-C.
  """
  paths = rundir.RunPaths(config.output_dir)
  # The data comes first: a bad data file is reported before anything in the output directory is touched.
  dataset = data.load(config.dataset, config.data_dir)
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
  run = TrainingRun(config, paths, handover, flag_values, log)
  try:
    for epoch in range(run.completed_epochs + 1, config.epochs + 1):
      run.train_epoch(epoch)
  except KeyboardInterrupt:
    # The checkpoint, not the step counter, says what is kept: Ctrl-C during an epoch's evaluation or frames
    # finds its steps done but its checkpoint not yet written.
    completed = run.trainer.checkpointed_epochs()
    raise Interrupted(f'interrupted; {completed} of {config.epochs} epochs are complete and checkpointed in '
                      f'{paths.checkpoints}. Run the same command again to resume') from None
  finally:
    run.close_epochs()
  return run.finish()


class TrainingRun:
  """One run in its output directory, in three parts: set up and restored (`__init__`), trained one epoch at a
  time (`train_epoch`), and finished (`finish`: gifs, loss curve, export, the final estimate)."""

  def __init__(self, config, paths, handover, flag_values, log):
    """Clears (--fresh) or checks (a resume) the directory, writes flags.json, builds the trainer and restores
    its checkpoint, and prepares what every epoch evaluates and draws on the same footing."""
    dataset = handover.pop()
    self.config, self.paths, self.log = config, paths, log
    if config.fresh:
      rundir.clear_run(paths)
    elif tf.train.latest_checkpoint(paths.checkpoints):
      rundir.check_resumable(paths, flag_values)
    rundir.write_json(paths.flags, flag_values)
    # Same seed and flags, same numbers: deterministic kernels (on CPU this costs little).
    tf.config.experimental.enable_op_determinism()

    train_images, self.test_images = inputs.prepare_images(dataset, config.binarize, config.seed)
    self.trainer = Trainer(config, train_images, paths.checkpoints, dataset.image_shape)
    del train_images
    self.dataset = dataset._replace(train_images=None)  # the trainer holds its compact copy
    self.completed_epochs = self.trainer.restore()
    if self.completed_epochs:
      log(f'resuming after epoch {self.completed_epochs} (step {int(self.trainer.step.numpy())}) from '
          f'{paths.checkpoints}')
    self.rows = rundir.read_metrics(paths.metrics, up_to_epoch=self.completed_epochs)

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
      train_loss = trainer.run_epoch(f'epoch {epoch}/{config.epochs}')
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
  """--eval_only: restores the run in `output_dir` and re-estimates its test ELBO and log-likelihood."""
  paths = rundir.RunPaths(output_dir)
  saved = rundir.read_saved_flags(paths)
  if saved is None or not tf.train.latest_checkpoint(paths.checkpoints):
    raise VAEError(f'{output_dir} holds no trained run (no flags.json or no checkpoint); train one there first')
  fields = {f.name for f in dataclasses.fields(Config)}
  run_config = Config(**{k: v for k, v in saved.items() if k in fields})
  config = dataclasses.replace(run_config, eval_k=eval_k, output_dir=output_dir,
                               data_dir=data.resolve_data_dir(run_config.dataset, data_dir, saved.get('data_dir')))
  dataset = data.load(config.dataset, config.data_dir)
  _, test_images = inputs.prepare_images(dataset, config.binarize, config.seed)
  model = build_model(config, dataset.image_shape)
  step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
  latest = tf.train.latest_checkpoint(paths.checkpoints)
  try:  # Only the networks and the step are needed; the optimiser state is left alone.
    tf.train.Checkpoint(encoder=model.encoder, decoder=model.decoder, step=step).restore(latest).expect_partial()
  except (tf.errors.OpError, ValueError) as e:
    raise VAEError(f'cannot restore checkpoint {latest} ({str(e).splitlines()[0]})') from None
  log(f'restored {latest} (step {int(step.numpy())})')
  evaluate_fn = evaluate.make_evaluator(model)
  eval_eps = evaluate.eval_noise(config.seed, len(test_images), config.latent_dim)
  final = final_evaluation(model, test_images, config, evaluate_fn, eval_eps, log)
  rundir.write_json(paths.evaluation, final)
  return final
