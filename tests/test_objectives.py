"""The k-sample training objectives (--train_k, --objective) and the dynamic binarisation draw."""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae.run import engine, keys
from vae.run.config import Config
from vae import evaluate, model as model_lib, networks, objectives, train
from conftest import train_run, synthetic_digits, write_mnist

QUIET = lambda *args: None  # noqa: E731


def tiny_model(seed=0):
  keras.utils.set_random_seed(seed)
  return model_lib.VAE(networks.build_encoder('fc', 2), networks.build_decoder('fc', 2))


def grey_images(count, seed=0):
  images, _ = synthetic_digits(count, seed=seed)
  return images.reshape(count, 784).astype(np.float32) / 255.0


def numpy_log_weights(vae, x, eps):
  """log p(x|z) + log N(z; 0, I) - log N(z; mean, sigma^2), in float64, from the networks' raw outputs."""
  mean, log_var = (t.numpy().astype(np.float64) for t in vae.encode(x))
  z = mean + np.exp(0.5 * log_var) * eps.astype(np.float64)                              # [k, B, d]
  logits = vae.decode(z.reshape(-1, 2).astype(np.float32)).numpy().astype(np.float64).reshape(*z.shape[:2], -1)
  log_p = -np.logaddexp(0, -logits)               # log sigmoid
  log_not_p = -np.logaddexp(0, logits)            # log (1 - sigmoid)
  log_px_z = np.sum(x * log_p + (1 - x) * log_not_p, -1)
  log_pz = np.sum(-0.5 * z ** 2 - 0.5 * np.log(2 * np.pi), -1)
  log_qz = np.sum(-0.5 * ((z - mean) ** 2) / np.exp(log_var) - 0.5 * log_var - 0.5 * np.log(2 * np.pi), -1)
  return log_px_z + log_pz - log_qz, mean, log_var, log_px_z


def test_the_k_sample_objectives_match_numpy():
  vae = tiny_model()
  x = grey_images(6)
  eps = np.random.default_rng(1).normal(size=(5, 6, 2)).astype(np.float32)
  log_w, mean, log_var, log_px_z = numpy_log_weights(vae, x, eps)
  iwae = np.mean(np.log(np.mean(np.exp(log_w - log_w.max(0)), 0)) + log_w.max(0))     # L_5, the hard way
  kl = 0.5 * np.sum(mean ** 2 + np.exp(log_var) - log_var - 1, -1)
  elbo = np.mean(log_px_z.mean(0) - kl)
  np.testing.assert_allclose(float(objectives.negative_iwae_bound(vae, x, eps)), -iwae, rtol=1e-5)
  np.testing.assert_allclose(float(objectives.negative_k_sample_elbo(vae, x, eps)), -elbo, rtol=1e-5)
  np.testing.assert_allclose(float(objectives.negative_k_sample_elbo(vae, x, eps, rate_weight=0.0)),
                             -np.mean(log_px_z.mean(0)), rtol=1e-5)


def test_the_iwae_bound_is_above_the_k_sample_elbo():
  vae = tiny_model()
  x = grey_images(32)
  eps = tf.random.stateless_normal([5, 32, 2], seed=[0, 1])
  log_w = vae.k_sample_terms(x, eps)['log_weight'].numpy().astype(np.float64)                           # [5, 32]
  bound = -float(objectives.negative_iwae_bound(vae, x, eps))
  # Jensen, sample by sample: log mean w >= mean log w, for every image and every draw.
  per_image = np.log(np.mean(np.exp(log_w - log_w.max(0)), 0)) + log_w.max(0)
  assert np.all(per_image >= log_w.mean(0) - 1e-4)
  np.testing.assert_allclose(bound, per_image.mean(), rtol=1e-5)
  assert np.mean(per_image - log_w.mean(0)) > 0.01  # and strictly above on average: the bound is tighter


def test_one_sample_elbo_is_the_plain_train_step_bit_for_bit():
  x = grey_images(16)
  eps = engine.train_noise(4, 7, 16, 2)
  vae_a, vae_b = tiny_model(), tiny_model()
  optimizer_a, optimizer_b = keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-2)
  loss_a = train.train_step(vae_a, optimizer_a, x, eps)
  loss_b = train.train_step(vae_b, optimizer_b, x, eps[None], loss=objectives.negative_k_sample_elbo)
  np.testing.assert_allclose(float(loss_a), float(loss_b), rtol=1e-6)  # the same maths by another route
  # The engine itself runs train_step for k = 1: checked bit for bit in test_model.py.


def test_k_samples_come_from_the_training_noise_stream():
  eps = engine.train_noise(3, 11, 4, 2, num_samples=5)
  assert eps.shape == (5, 4, 2)
  np.testing.assert_array_equal(eps.numpy(), engine.train_noise(3, 11, 4, 2, num_samples=5).numpy())
  assert not np.array_equal(eps.numpy(), engine.train_noise(3, 12, 4, 2, num_samples=5).numpy())
  # Standard normal draws, none shared with the one-sample noise of another step or with the evaluation noise.
  many = engine.train_noise(3, 11, 500, 2, num_samples=5).numpy()
  assert abs(many.mean()) < 0.05 and abs(many.std() - 1.0) < 0.05
  others = np.concatenate([engine.train_noise(3, 12, 4, 2).numpy().ravel(),
                           evaluate.eval_noise(3, 4, 2).numpy().ravel()])
  assert not set(eps.numpy().ravel().tolist()) & set(others.tolist())


@pytest.mark.parametrize('objective', ['elbo', 'iwae'])
def test_training_with_k_samples_lowers_the_loss_and_records_the_objective(tmp_path, objective):
  data_dir = str(tmp_path / 'mnist')
  write_mnist(data_dir)
  out = tmp_path / 'run'
  config = Config(data_dir=data_dir, output_dir=str(out), epochs=3, updates_per_epoch=10, batch_size=32,
                       eval_k=5, do_viz=False, learning_rate=3e-3, train_k=4, objective=objective)
  train_run(config, log=QUIET)
  rows = list(csv.DictReader(open(out / 'metrics.csv')))
  assert [(r['objective'], r['train_k']) for r in rows] == [(objective, '4')] * 3
  losses = [float(r['train_loss']) for r in rows]
  assert losses[2] < losses[0] - 20, losses


def test_bernoulli_pixels_are_one_with_probability_equal_to_the_intensity():
  levels = np.arange(256, dtype=np.float32) / np.float32(255.0)
  copies = 4000
  intensities = tf.constant(np.tile(levels, (copies, 1)))                              # [copies, 256]
  pixels = engine.bernoulli_pixels(intensities, keys.key(0, keys.DYNAMIC_BINARIZATION, 5)).numpy()
  assert set(np.unique(pixels).tolist()) <= {0.0, 1.0}
  frequency = pixels.mean(0)                                                           # per grey level
  standard_error = np.sqrt(np.maximum(levels * (1 - levels), 1e-12) / copies)
  assert np.all(np.abs(frequency - levels) <= 5 * standard_error + 1e-9)
  assert frequency[0] == 0.0 and frequency[255] == 1.0


def test_dynamic_binarisation_draws_the_same_pixels_at_the_same_step_and_new_ones_at_the_next():
  intensities = tf.constant(np.full((64, 784), 0.5, np.float32))
  at = lambda seed, step: engine.bernoulli_pixels(  # noqa: E731
      intensities, keys.key(seed, keys.DYNAMIC_BINARIZATION, step)).numpy()
  np.testing.assert_array_equal(at(0, 7), at(0, 7))
  assert np.mean(at(0, 7) != at(0, 8)) > 0.4  # independent draws differ in about half the pixels
  assert np.mean(at(0, 7) != at(1, 7)) > 0.4


def test_each_objective_is_built_in_one_place_and_an_unknown_one_is_refused():
  assert objectives.training_loss('elbo', 1) is objectives.negative_elbo
  assert objectives.training_loss('elbo', 5) is objectives.negative_k_sample_elbo
  assert objectives.training_loss('iwae', 1) is objectives.negative_iwae_bound
  assert objectives.samples_per_image('elbo', 1) is None and objectives.samples_per_image('iwae', 1) == 1
  with pytest.raises(ValueError, match="--objective must be one of elbo, iwae, got 'vae'"):
    objectives.training_loss('vae', 1)
  from vae.run.config import Config, SETTINGS
  choices = next(f.metadata['choices'] for f in SETTINGS if f.name == 'objective')
  assert choices == tuple(objectives.OBJECTIVES) and Config.objective in choices


def test_iwae_with_one_sample_is_the_sampled_kl_estimator_of_the_elbo():
  """-L_1 = distortion + log q(z|x) - log p(z) at the sample: the ELBO with its KL sampled, which is not the
  default's closed-form-KL loss for the same noise, though both have the same expectation."""
  vae = tiny_model()
  x = grey_images(8)
  eps = np.random.default_rng(2).normal(size=(1, 8, 2)).astype(np.float32)
  log_w, mean, log_var, log_px_z = numpy_log_weights(vae, x, eps)
  sampled_kl = -(log_w[0] - log_px_z[0])                                  # log q(z|x) - log p(z), [B]
  np.testing.assert_allclose(float(objectives.negative_iwae_bound(vae, x, eps)),
                             np.mean(-log_px_z[0] + sampled_kl), rtol=1e-5)
  closed_kl = 0.5 * np.sum(mean ** 2 + np.exp(log_var) - log_var - 1, -1)
  np.testing.assert_allclose(float(objectives.negative_elbo(vae, x, eps[0])), np.mean(-log_px_z[0] + closed_kl),
                             rtol=1e-5)
  assert abs(np.mean(sampled_kl - closed_kl)) > 1e-3  # two estimators, not one
