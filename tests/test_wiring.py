"""From a setting to the training step, through real runs: what each step of `epochs.start_or_resume` receives.

A recorder sits at the entrance of the training step (`engine.train_step`, whatever the objective) and writes
down, for every global step, the pixels x the step trains on and the weight of the rate. It reads the step number
from the optimiser's own counter, which the checkpoint restores, so a resumed run's steps are keyed as an
uninterrupted run's are. The recorder is a `tf.py_function`, which XLA cannot compile, so these runs take the
engine's other path (the unrolled steps that conv runs take); the step itself is the same code either way.

The training set is one batch (16 images, --batch_size=16), so every step sees every image, in some order: the
set of rows a step trains on tells which pixels it got, with no need to know the minibatch order.
"""

import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from vae import data
from vae.run import engine, epochs
from vae.run.config import Config
from vae.run import record
from vae.run import state
from conftest import train_run, write_mnist

QUIET = lambda *args: None  # noqa: E731
UPDATES, EPOCHS, BATCH = 2, 2, 16


@pytest.fixture
def recorded_steps(monkeypatch):
  """{global step: (x [B, D], rate weight)} of every training step run while the test runs."""
  seen = {}

  def record(step, x, weight):
    seen[int(step.numpy())] = (x.numpy().copy(), float(weight.numpy()))

  def recorded(step_fn, weight_position):
    def step(model, optimizer, x, eps, *args):
      weight = args[weight_position] if len(args) > weight_position else tf.constant(1.0)
      tf.py_function(record, [optimizer.iterations, x, weight], [])
      return step_fn(model, optimizer, x, eps, *args)
    return step

  monkeypatch.setattr(engine, 'train_step', recorded(engine.train_step, 0))          # (rate_weight, loss)
  monkeypatch.setattr(state, 'use_xla', lambda *architectures: False)
  return seen


def metrics_without_time(output_dir):
  with open(os.path.join(output_dir, 'metrics.csv')) as f:
    return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(f)]


def checkpointed_values(output_dir):
  reader = tf.train.load_checkpoint(os.path.join(output_dir, 'checkpoints'))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name != '_CHECKPOINTABLE_OBJECT_GRAPH'}


def rows(x):
  """The set of images a step trained on, whatever their order: sorted rows as bytes."""
  return sorted(row.tobytes() for row in x)


def is_binary(x):
  return set(np.unique(x).tolist()) <= {0.0, 1.0}


SETTINGS = {
    'grey, warm-up': dict(binarize='none', beta=0.5, kl_warmup_steps=3),
    'dynamic, k=3 elbo': dict(binarize='dynamic', train_k=3, objective='elbo'),
    'static, k=3 iwae': dict(binarize='static', train_k=3, objective='iwae'),
}


@pytest.mark.parametrize('name', list(SETTINGS))
def test_each_step_trains_on_the_pixels_and_weight_its_settings_say_and_reruns_and_resumes_bit_for_bit(
    tmp_path, recorded_steps, name):
  settings = SETTINGS[name]
  mnist_dir = str(tmp_path / 'mnist')
  write_mnist(mnist_dir, num_train=BATCH, num_test=32)
  grey = data.load('mnist', mnist_dir, mirrors=()).train_images

  def run(directory, epochs=EPOCHS):
    recorded_steps.clear()
    train_run(Config(data_dir=mnist_dir, output_dir=str(tmp_path / directory), epochs=epochs,
                           updates_per_epoch=UPDATES, batch_size=BATCH, eval_k=2, do_viz=False,
                           learning_rate=1e-3, **settings), log=QUIET)
    return dict(recorded_steps)

  # The same command twice: once through, and once stopped after its first epoch and resumed. The first part of
  # the second is a rerun of the first's start; the resumed part must continue it exactly.
  whole = run('whole')
  rerun = run('resumed', epochs=1)
  resumed = run('resumed')

  steps = EPOCHS * UPDATES
  assert sorted(whole) == list(range(steps))
  assert sorted(rerun) == list(range(UPDATES)) and sorted(resumed) == list(range(UPDATES, steps))
  for step, (x, weight) in {**rerun, **resumed}.items():
    np.testing.assert_array_equal(x, whole[step][0])
    assert weight == whole[step][1]

  # The rate's weight at global step t, in the resumed process too: beta * min(1, t / warm-up steps).
  beta, warmup = settings.get('beta', 1.0), settings.get('kl_warmup_steps', 0)
  for step, (_, weight) in resumed.items():
    expected = beta * min(1.0, step / warmup) if warmup else beta
    assert weight == pytest.approx(expected, rel=1e-6), step

  pixels = [whole[step][0] for step in range(steps)]
  if settings['binarize'] == 'none':  # the grey images themselves
    assert all(rows(x) == rows(grey) for x in pixels)
  else:
    assert all(is_binary(x) for x in pixels)
    assert abs(np.mean(pixels) - grey.mean()) < 0.02  # Bernoulli(intensity) keeps the mean intensity
    distinct = {tuple(rows(x)) for x in pixels}
    # static: one binarised copy, the same at every step; dynamic: new draws at every step.
    assert len(distinct) == (1 if settings['binarize'] == 'static' else steps)

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
