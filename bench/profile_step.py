"""Where one fc training step's time goes, measured piece by piece (batch 128, XLA, steps looped on-graph).

    python bench/profile_step.py             # --data_dir=DIR for MNIST elsewhere than ../mnist

Each line is milliseconds per training step, the median of 5 rounds of 10 calls (of 10 steps, mostly):

* input: the batch gather, uint8 -> float and the posterior noise, nothing else;
* forward: input + the forward pass and the loss;
* forward + backward: also every gradient (each one consumed, so that none is pruned away);
* full step: also the Adam update; this is the training step `run.py` uses;
* Adam update alone: `apply_gradients` of fixed gradients to the 1.49M parameters;
* matmuls alone: the step's 23 matrix products at their real shapes (8 forward, 8 weight gradients, 7 input
  gradients; the first layer needs no input gradient), one call per step, in XLA;
* per-call cost: ours through `TrainingState.take_epoch_steps` (Python loop, tf.data indices, loss read-back) minus the
  full step, per step.

Also the machine's matmul rate (a 1024^3 product, GFLOP/s), and the step's arithmetic: 8.13 MFLOP per image in
matrix products, so the rate the matmuls alone would allow. The difference between "full step" and "matmuls
alone" is the element-wise work (bias, ReLU, softplus, their gradients, bias-gradient reductions) and the
optimizer; docs/performance.md has the figures, with the CPU they come from.
"""

import io
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = REPO  # as in bench.py: the repository root, not bench/, comes first

from absl import app, flags  # noqa: E402

flags.DEFINE_string('data_dir', '../mnist', 'Where the four MNIST IDX files are (run.py\'s default); '
                    'downloaded into it if missing.')
flags.DEFINE_integer('rounds', 5, 'Measurement rounds (the median is printed).')
flags.DEFINE_integer('calls', 10, 'Calls per round.')
FLAGS = flags.FLAGS

BATCH = 128


def median_ms_per_step(fn, steps_per_call, rounds):
  fn()
  fn()  # compile, warm caches
  times = []
  for _ in range(rounds):
    started = time.perf_counter()
    for _ in range(FLAGS.calls):
      out = fn()
    _ = [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]
    times.append((time.perf_counter() - started) / (FLAGS.calls * steps_per_call) * 1000.0)
  return statistics.median(times)


def main(argv):
  del argv
  from vae.commands.quiet import import_tensorflow
  tf = import_tensorflow()
  import keras
  from bench import machine
  from vae import data, preprocess
  from vae.run import engine
  from vae.run.config import Config
  from vae.run.state import TrainingState, build_model, STEPS_PER_CALL
  steps_per_call = STEPS_PER_CALL

  tf.config.experimental.enable_op_determinism()  # as in run.py
  mnist = data.load('mnist', FLAGS.data_dir)
  config = Config(updates_per_epoch=2 * steps_per_call)
  model = build_model(config)
  kernels = [tuple(w.shape) for w in model.trainable_variables if len(w.shape) == 2]
  if kernels != machine.FC_LAYERS:
    raise SystemExit(f'the fc network changed ({kernels}); update bench/machine.py FC_LAYERS')
  optimizer = keras.optimizers.Adam(config.learning_rate)
  variables = model.trainable_variables
  optimizer.build(variables)
  codes, scale = engine.compact_images(mnist.train_images)
  stored = tf.constant(codes)
  batches = iter(preprocess.train_batch_indices(len(codes), BATCH, seed=0))
  indices = tf.stack([next(batches) for _ in range(steps_per_call)])

  def make(upto):
    def one_step(batch_indices, step):
      x = tf.cast(tf.gather(stored, batch_indices), tf.float32) * scale
      eps = engine.train_noise(0, step, BATCH, 2)
      if upto == 'input':
        return tf.reduce_sum(x) + tf.reduce_sum(eps)
      with tf.GradientTape() as tape:
        terms = model.terms(x, eps, training=True)
        loss = tf.reduce_mean(terms['rate'] + terms['distortion'])
      if upto == 'forward':
        return loss
      grads = tape.gradient(loss, variables)
      return loss + tf.add_n([tf.reduce_sum(g) for g in grads])  # 'backward': every gradient consumed

    @tf.function(jit_compile=True)
    def steps(first_step):
      losses = tf.TensorArray(tf.float32, size=steps_per_call)
      for s in tf.range(steps_per_call):
        losses = losses.write(s, one_step(indices[s], first_step + tf.cast(s, tf.int64)))
      return losses.stack()
    return lambda: steps(tf.constant(0, tf.int64))

  fixed_grads = [tf.random.normal(v.shape, stddev=1e-3, seed=1) for v in variables]

  @tf.function(jit_compile=True)
  def adam_alone():
    for _ in range(steps_per_call):
      optimizer.apply_gradients(zip(fixed_grads, variables))
    return optimizer.iterations

  matmuls_alone = machine.fc_matmuls()

  big = tf.random.normal([1024, 1024], seed=2)
  big_matmul = tf.function(lambda: tf.matmul(big, big), jit_compile=True)
  big_matmul_ms = median_ms_per_step(big_matmul, 1, FLAGS.rounds)
  machine_gflops = 2 * 1024 ** 3 / (big_matmul_ms / 1000.0) / 1e9

  with tempfile.TemporaryDirectory() as scratch:
    # The full step is the project's own: the compiled steps of run.py's TrainingState, called on their own for
    # the 'full step' row (the same compiled program, so it is compiled once).
    trainer = TrainingState(config, mnist.train_images, scratch)
    full_steps = trainer.compiled_steps

    def ours():
      trainer.take_epoch_steps(stream=io.StringIO())  # reads every loss back itself
      return []
    ours_ms = median_ms_per_step(ours, config.updates_per_epoch, FLAGS.rounds)

  rows = {
      'input': median_ms_per_step(make('input'), steps_per_call, FLAGS.rounds),
      'forward': median_ms_per_step(make('forward'), steps_per_call, FLAGS.rounds),
      'forward + backward': median_ms_per_step(make('backward'), steps_per_call, FLAGS.rounds),
      'full step': median_ms_per_step(lambda: full_steps(indices, 0), steps_per_call, FLAGS.rounds),
      'Adam update alone': median_ms_per_step(adam_alone, steps_per_call, FLAGS.rounds),
      'matmuls alone': median_ms_per_step(matmuls_alone, 1, FLAGS.rounds),
  }
  rows['per-call cost (TrainingState.take_epoch_steps - full step)'] = ours_ms - rows['full step']
  flops = machine.fc_matmul_flops_per_image() * BATCH
  print(f'fc step, batch {BATCH}, ms per step (median of {FLAGS.rounds} rounds):')
  for name, ms in rows.items():
    print(f'  {name:<48}{ms:>7.2f}')
  print(f'  {"ours through TrainingState.take_epoch_steps":<48}{ours_ms:>7.2f}   ({BATCH / ours_ms * 1000:,.0f} images/s)')
  print(f'machine matmul rate (1024^3): {machine_gflops:.0f} GFLOP/s; the step\'s matmuls: '
        f'{flops / 1e9:.2f} GFLOP = {flops / 1e6 / rows["matmuls alone"]:.0f} GFLOP/s at their real shapes; '
        f'matmuls alone would allow {BATCH / rows["matmuls alone"] * 1000:,.0f} images/s')


if __name__ == '__main__':
  app.run(main)
