"""The continuous Bernoulli likelihood (vae/model.py) against independent expectations: a density that integrates
to 1 over [0, 1], its log-density against a float64 numpy reference, its mean against the integral of x p(x),
finite gradients everywhere, and a short run trained with it through run.py."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from vae import model as model_lib
from vae.run import rundir
from vae.commands.errors import VAEError
from conftest import copy_run, many_mains, tiny_config, train_run

# Logits across [-30, 30], 0 itself, and a few within 1e-4 of lambda = 1/2 (|l| < 4e-4) and around the switch
# between the series and the closed form.
LOGITS = np.concatenate([np.linspace(-30, 30, 61), [0.0, 1e-7, -3e-5, 2e-4, -4e-4],
                         [model_lib.TAYLOR_BELOW * f for f in (-1.001, -0.999, 0.999, 1.001)]]).astype(np.float32)


def log_density(x, logits):
  """log p(x | l) per element, float32, through the model's distortion of one-pixel images."""
  x, logits = np.broadcast_arrays(np.asarray(x, np.float32), np.asarray(logits, np.float32))
  flat_x, flat_l = x.reshape(-1, 1), logits.reshape(-1, 1)
  return -model_lib.distortion(tf.constant(flat_x), tf.constant(flat_l), 'continuous_bernoulli').numpy().reshape(
      x.shape)


def reference_log_density(x, logits):
  """The same in float64 numpy, from the definition with lambda: x log lambda + (1 - x) log(1 - lambda) + log C,
  C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda), C(1/2) = 2. Each piece is computed where float64 keeps it
  exact: lambda and 1 - lambda each from the logit (never 1 - lambda from a lambda rounded near 1), and
  artanh(u) = 1/2 (log(1 + u) - log(1 - u)) with 1 + u = 2 (1 - lambda) and 1 - u = 2 lambda."""
  x, logits = np.asarray(x, np.float64), np.asarray(logits, np.float64)
  log_lam, log_one_minus = -np.logaddexp(0.0, -logits), -np.logaddexp(0.0, logits)
  u = np.exp(log_one_minus) - np.exp(log_lam)                                        # 1 - 2 lambda
  artanh_u = 0.5 * ((np.log(2.0) + log_one_minus) - (np.log(2.0) + log_lam))
  with np.errstate(divide='ignore', invalid='ignore'):
    log_c = np.where(u == 0.0, np.log(2.0), np.log(2.0 * artanh_u / np.where(u == 0.0, 1.0, u)))
  return x * log_lam + (1.0 - x) * log_one_minus + log_c


def test_the_density_integrates_to_one_over_the_unit_interval():
  x = np.linspace(0.0, 1.0, 4001)                                                     # Simpson's rule, 4000 steps
  weights = np.ones_like(x)
  weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
  weights *= (x[1] - x[0]) / 3.0
  densities = np.exp(log_density(x[None, :], LOGITS[:, None]).astype(np.float64))    # [L, X]
  np.testing.assert_allclose(densities @ weights, 1.0, rtol=2e-5)


def test_the_log_density_is_the_float64_reference_to_float32_precision():
  x = np.linspace(0.0, 1.0, 11, dtype=np.float32)
  got = log_density(x[None, :], LOGITS[:, None])
  expected = reference_log_density(x[None, :], LOGITS[:, None])
  # float32 keeps 2^-24 of a value; the terms of the sum are up to |l|, so the error is relative to that size.
  scale = np.maximum(1.0, np.abs(LOGITS[:, None]))
  assert np.max(np.abs(got - expected) / scale) < 4 * 2.0 ** -24
  near_half = np.abs(LOGITS) < 4e-4
  assert np.max(np.abs(got[near_half] - expected[near_half])) < 2 * 2.0 ** -24 * 2  # around log 2, within 1e-4 of 1/2


def test_the_mean_is_the_integral_of_x_times_the_density():
  x = np.linspace(0.0, 1.0, 4001)
  weights = np.ones_like(x)
  weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
  weights *= (x[1] - x[0]) / 3.0
  densities = np.exp(reference_log_density(x[None, :], LOGITS[:, None].astype(np.float64)))
  expected = (densities * x) @ weights
  got = model_lib.likelihood_mean(tf.constant(LOGITS), 'continuous_bernoulli').numpy()
  np.testing.assert_allclose(got, expected, atol=2e-6)
  assert model_lib.likelihood_mean(tf.constant(0.0), 'continuous_bernoulli').numpy() == 0.5
  # The Bernoulli's mean is its parameter, so its pictures are what they always were.
  np.testing.assert_array_equal(model_lib.mean_logits(tf.constant(LOGITS)).numpy(), LOGITS)
  # What the pictures draw for the continuous Bernoulli: logits whose sigmoid is its mean.
  shown = tf.sigmoid(model_lib.mean_logits(tf.constant(LOGITS), 'continuous_bernoulli')).numpy()
  np.testing.assert_allclose(shown, got, rtol=1e-5, atol=1e-6)


def test_gradients_are_finite_everywhere():
  logits = tf.constant(np.concatenate([LOGITS, [-1e4, -100.0, 100.0, 1e4]]).astype(np.float32))
  x = tf.constant(np.linspace(0.0, 1.0, len(logits)).astype(np.float32))
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(logits)
    nll = model_lib.distortion(x[:, None], logits[:, None], 'continuous_bernoulli')
    mean = model_lib.likelihood_mean(logits, 'continuous_bernoulli')
  for value, gradient in ((nll, tape.gradient(nll, logits)), (mean, tape.gradient(mean, logits))):
    assert np.all(np.isfinite(value.numpy())) and np.all(np.isfinite(gradient.numpy()))


def test_run_py_trains_with_it_records_it_and_refuses_to_resume_with_the_other(shared_run, tmp_path):
  data_dir, _ = shared_run('reference')
  out = tmp_path / 'cb'
  common = [f'--data_dir={data_dir}', f'--output_dir={out}', '--updates_per_epoch=4', '--batch_size=16',
            '--eval_k=3', '--learning_rate=1e-3', '--do_viz=False']
  (trained, _), (refused, refusal) = many_mains('run', [common + ['--likelihood=continuous_bernoulli', '--epochs=2'],
                                                      common + ['--epochs=3']])
  assert trained == 0
  flags = json.load(open(out / 'flags.json'))
  evaluation = json.load(open(out / 'evaluation.json'))
  assert flags['likelihood'] == evaluation['likelihood'] == 'continuous_bernoulli'
  rows = rundir.read_metrics(str(out / 'metrics.csv'))
  assert all(np.isfinite([row['test_elbo'] for row in rows])) and rows[-1]['train_loss'] < rows[0]['train_loss']
  assert np.isfinite(evaluation['test_log_likelihood']) and evaluation['test_log_likelihood'] >= evaluation['test_elbo']
  # vae-explore draws the run's pictures from its export, with the likelihood its flags.json names.
  from vae.commands import explore
  written = explore.explore(str(out), str(tmp_path / 'pictures'), count=10, pairs=1, steps=3, log=lambda *a: None)
  assert sorted(os.path.basename(p) for p in written) == ['interpolation.gif', 'interpolations.png',
                                                          'mean_reconstructions.png', 'samples.png']
  flags_path = out / 'flags.json'
  flags_path.write_text(json.dumps(dict(flags, likelihood='gaussian')))
  with pytest.raises(VAEError, match="names the likelihood 'gaussian', which is none of bernoulli, "):
    explore.explore(str(out), str(tmp_path / 'pictures'), count=10, pairs=1, steps=3, log=lambda *a: None)
  assert refused == 1 and refusal == (f'error: {out} holds a run made with --likelihood=continuous_bernoulli, not '
                                      f'bernoulli; rerun with the same flags to resume it, or pass --fresh to start '
                                      f'over (this deletes its checkpoints, metrics and frames)\n')


def test_a_run_saved_before_the_likelihood_existed_is_a_bernoulli_run(shared_run, tmp_path):
  data_dir, reference = shared_run('reference')
  run = copy_run(reference, tmp_path / 'run')
  flags_path = os.path.join(run, 'flags.json')
  saved = json.load(open(flags_path))
  del saved['likelihood']
  json.dump(saved, open(flags_path, 'w'))
  with pytest.raises(VAEError, match='holds a run made with --likelihood=bernoulli, not continuous_bernoulli'):
    train_run(tiny_config(data_dir, run, epochs=4, likelihood='continuous_bernoulli'), log=lambda *args: None)
