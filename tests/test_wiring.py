"""From a setting to the training step, through real runs: what each step of `epochs.start_or_resume` receives.

A recorder sits at the entrance of the training step (`engine.train_step`, whatever the objective) and writes
down, for every global step, the pixels x the step trains on, its noise eps and the weight of the rate. It reads
the step number from the optimiser's own counter, which the checkpoint restores, so a resumed run's steps are keyed
as an uninterrupted run's are. The recorder is a `tf.py_function`, which XLA cannot compile, so these runs take the
engine's other path (the unrolled steps that conv runs take); the step itself is the same code either way.

Each epoch is four steps in two compiled calls of two (the steps per call are set to two here, from run.py's ten:
the steps of a call are unrolled when it is traced, and tracing is most of these runs' time), and a run is two
epochs, so a schedule computed per call instead of per global step shows, and so does one that restarts with each
epoch. Every step is checked against what this file computes without the engine: the
minibatch order from tf.data's seeded shuffle of the row indices, the rate's weight beta * min(1, t / warm-up),
the noise and the dynamic binarisation as stateless draws with the keys vae/run/keys.py documents.
"""

import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from vae import data, preprocess
from vae.run import engine
from vae.run.config import Config
from vae.run import record
from vae.run import state
from conftest import train_run, write_mnist

QUIET = lambda *args: None  # noqa: E731
UPDATES, EPOCHS, BATCH, NUM_TRAIN, SEED = 4, 2, 16, 48, 0  # 8 steps: the 48 rows are 3 batches, so 2 passes and more
STEPS_PER_CALL = 2  # down from run.py's ten, so that the unrolled calls trace quickly: each epoch is two calls


@pytest.fixture
def recorded_steps(monkeypatch):
  """{global step: (x [B, D], rate weight)} of every training step run while the test runs."""
  seen = {}

  def record(step, x, eps, weight):
    seen[int(step.numpy())] = (x.numpy().copy(), float(weight.numpy()), eps.numpy().copy())

  def recorded(step_fn, weight_position):
    def step(model, optimizer, x, eps, *args):
      weight = args[weight_position] if len(args) > weight_position else tf.constant(1.0)
      tf.py_function(record, [optimizer.iterations, x, eps, weight], [])
      return step_fn(model, optimizer, x, eps, *args)
    return step

  monkeypatch.setattr(engine, 'train_step', recorded(engine.train_step, 0))          # (rate_weight, loss)
  monkeypatch.setattr(state, 'use_xla', lambda *architectures: False)
  monkeypatch.setattr(state, 'STEPS_PER_CALL', STEPS_PER_CALL)
  return seen


def metrics_without_time(output_dir):
  with open(os.path.join(output_dir, 'metrics.csv')) as f:
    return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(f)]


def checkpointed_values(output_dir):
  reader = tf.train.load_checkpoint(os.path.join(output_dir, 'checkpoints'))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name != '_CHECKPOINTABLE_OBJECT_GRAPH'}


def expected_batches(steps):
  """The row indices of steps 0 .. steps-1: a shuffle of all rows with the seed, reshuffled each pass, with batches
  running on across passes."""
  order = (tf.data.Dataset.range(NUM_TRAIN).shuffle(NUM_TRAIN, seed=SEED, reshuffle_each_iteration=True).repeat()
           .batch(BATCH, drop_remainder=True).take(steps))
  return [batch.numpy() for batch in order]


def stateless_key(tag, step):
  return tf.constant([SEED, (tag << 40) + step], tf.int64)  # vae/run/keys.py: [seed, tag * 2**40 + counter]


@tf.function(jit_compile=True)  # TensorFlow draws Threefry numbers only under XLA
def threefry_uniforms(shape, key):
  return tf.random.stateless_uniform(shape, seed=key, alg='threefry')


def is_binary(x):
  return set(np.unique(x).tolist()) <= {0.0, 1.0}


SETTINGS = {
    'grey, warm-up': dict(binarize='none', beta=0.5, kl_warmup_steps=5),  # 5 steps rising, 3 at beta
    'dynamic, k=3 elbo': dict(binarize='dynamic', train_k=3, objective='elbo'),
    'static, k=3 iwae': dict(binarize='static', train_k=3, objective='iwae'),
}


@pytest.mark.parametrize('name', list(SETTINGS))
def test_each_step_trains_on_the_pixels_noise_and_weight_its_settings_say_and_reruns_and_resumes_bit_for_bit(
    tmp_path, recorded_steps, name):
  settings = SETTINGS[name]
  mnist_dir = str(tmp_path / 'mnist')
  write_mnist(mnist_dir, num_train=NUM_TRAIN, num_test=32)
  grey = data.load('mnist', mnist_dir, mirrors=()).train_images

  def run(directory, epochs=EPOCHS):
    recorded_steps.clear()
    train_run(Config(data_dir=mnist_dir, output_dir=str(tmp_path / directory), epochs=epochs,
                     updates_per_epoch=UPDATES, batch_size=BATCH, eval_k=2, do_viz=False, learning_rate=1e-3,
                     seed=SEED, latent_dim=2, **settings), log=QUIET)
    return dict(recorded_steps)

  # The same command twice: once through, and once stopped after its first epoch and resumed. The first part of
  # the second is a rerun of the first's start; the resumed part must continue it exactly.
  whole = run('whole')
  rerun = run('resumed', epochs=1)
  resumed = run('resumed')

  steps = EPOCHS * UPDATES
  assert sorted(whole) == list(range(steps))
  assert sorted(rerun) == list(range(UPDATES)) and sorted(resumed) == list(range(UPDATES, steps))
  for step, (x, weight, eps) in {**rerun, **resumed}.items():
    np.testing.assert_array_equal(x, whole[step][0])
    assert weight == whole[step][1]
    np.testing.assert_array_equal(eps, whole[step][2])

  beta, warmup = settings.get('beta', 1.0), settings.get('kl_warmup_steps', 0)
  k = settings.get('train_k', 1)
  targets = {'none': grey, 'dynamic': grey, 'static': preprocess.binarized(grey, SEED, counter=0)}[settings['binarize']]
  for step, indices in enumerate(expected_batches(steps)):
    x, weight, eps = whole[step]
    # The rate's weight at global step t: beta * min(1, t / warm-up steps).
    assert weight == pytest.approx(beta * min(1.0, step / warmup) if warmup else beta, rel=1e-6), step
    # The noise of step t: one stateless normal draw keyed by (seed, t), [B, d], or [k, B, d] with k samples.
    shape = [BATCH, 2] if k == 1 and settings.get('objective', 'elbo') == 'elbo' else [k, BATCH, 2]
    np.testing.assert_array_equal(eps, tf.random.stateless_normal(shape, seed=stateless_key(1, step)).numpy(),
                                  err_msg=f'noise of step {step}')
    # The rows of the seeded shuffle, in its order; with dynamic binarisation, drawn afresh with step t's key.
    expected = targets[indices]
    if settings['binarize'] == 'dynamic':
      uniforms = threefry_uniforms(tf.constant(expected.shape), stateless_key(4, step)).numpy()
      expected = (uniforms < expected).astype(np.float32)
    np.testing.assert_array_equal(x, expected, err_msg=f'pixels of step {step}')
  if settings['binarize'] != 'none':
    assert all(is_binary(whole[step][0]) for step in whole)

  metrics = metrics_without_time(tmp_path / 'whole')
  assert metrics_without_time(tmp_path / 'resumed') == metrics
  expected, got = checkpointed_values(tmp_path / 'whole'), checkpointed_values(tmp_path / 'resumed')
  assert sorted(got) == sorted(expected)
  for key in expected:  # weights, Adam's moments, the step: bit for bit
    np.testing.assert_array_equal(got[key], expected[key], err_msg=key)

  if settings['binarize'] != 'none':
    # --eval_only restores the run and scores the same binary test set with the same noise: the same test ELBO.
    evaluation = json.load(open(tmp_path / 'whole' / 'evaluation.json'))
    again = record.evaluate_saved_run(str(tmp_path / 'whole'), eval_k=2, log=QUIET)
    assert again['test_elbo'] == evaluation['test_elbo']
