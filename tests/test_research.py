"""Research features: IWAE estimates, binarisation, checkpoint/resume, determinism, exports, summaries."""

import csv
import functools
import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from vae import data, evaluate, preprocess, model as model_lib, networks, train
from vae.run import engine, keys
from vae.run.config import Config
from vae.commands.errors import OutputError, VAEError
from vae.run.fileio import RunLock
from conftest import train_run, copy_run, many_mains, synthetic_digits, tiny_config, write_mnist

QUIET = lambda *args: None  # noqa: E731


def metrics_without_time(output_dir):
  with open(os.path.join(output_dir, 'metrics.csv')) as f:
    return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(f)]


def file_bytes(*parts):
  with open(os.path.join(*parts), 'rb') as f:
    return f.read()


@pytest.fixture(scope='module')
def reference_run(shared_run):
  """(data directory, output directory) of one uninterrupted 3-epoch run on tiny data, shared by the comparisons
  below (and by other test files): tests that change a run work on a copy."""
  return shared_run('reference')


def test_a_run_writes_every_research_output(reference_run):
  _, out = reference_run
  with open(os.path.join(out, 'metrics.csv')) as f:
    assert f.readline().strip() == ('dataset,objective,train_k,epoch,step,train_loss,test_elbo,test_rate,'
                                    'test_distortion,active_units,seconds')
  assert [r['epoch'] for r in metrics_without_time(out)] == ['1', '2', '3']
  evaluation = json.load(open(os.path.join(out, 'evaluation.json')))
  assert evaluation['eval_k'] == 3 and np.isfinite(evaluation['test_log_likelihood'])
  # The final test ELBO is the last epoch's, reused rather than computed again.
  assert f"{evaluation['test_elbo']:.6g}" == metrics_without_time(out)[-1]['test_elbo']
  curve = np.asarray(Image.open(os.path.join(out, 'loss_curve.png')).convert('L'))
  assert curve.ndim == 2 and min(curve.shape) > 200 and curve.std() > 10  # a picture with something drawn on it
  assert any(n.startswith('events.out.tfevents') for n in os.listdir(os.path.join(out, 'tensorboard')))
  assert tf.train.latest_checkpoint(os.path.join(out, 'checkpoints')).endswith('ckpt-12')


def test_tensorboard_holds_the_scalars_and_the_canvas(reference_run):
  _, out = reference_run
  tags = set()
  for name in os.listdir(os.path.join(out, 'tensorboard')):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(out, 'tensorboard', name)):
      tags.update(value.tag for value in event.summary.value)
  assert {'train_loss', 'test_elbo', 'test_rate', 'test_distortion', 'canvas', 'test_log_likelihood_k3'} <= tags


def test_the_exported_decoder_generates_digits_in_three_lines(reference_run):
  _, out = reference_run
  # The README's three lines:
  decoder = keras.models.load_model(os.path.join(out, 'export', 'decoder.keras'))
  z = np.random.default_rng(0).normal(size=(16, 2)).astype('float32')
  digits = keras.ops.sigmoid(decoder(z)).numpy().reshape(16, 28, 28)
  assert digits.shape == (16, 28, 28)
  # Trained, not freshly initialised: its digits have moved from an untrained decoder's grey towards the data.
  mnist_dir, _ = reference_run
  brightness = data.load('mnist', mnist_dir).train_images.mean()
  keras.utils.set_random_seed(0)  # its own initial weights, whatever the tests before it drew
  untrained = keras.ops.sigmoid(networks.build_decoder('fc', 2)(z)).numpy().mean()
  assert abs(digits.mean() - brightness) < abs(untrained - brightness) - 0.05, (digits.mean(), untrained, brightness)
  encoder = keras.models.load_model(os.path.join(out, 'export', 'encoder.keras'))
  mean, log_var = encoder(np.zeros((3, 784), np.float32))
  assert mean.shape == (3, 2) and log_var.shape == (3, 2)


def test_the_same_seed_stopped_and_resumed_gives_the_same_metrics_frames_and_gifs(reference_run, shared_run,
                                                                                  tmp_path):
  # Stopped after epoch 1 and resumed: every row, every frame of every epoch and both gifs equal those of the
  # uninterrupted reference, so a fresh run repeats (epoch 1) and a resumed one continues exactly (epochs 2, 3).
  mnist_dir, out = reference_run
  resumed = tmp_path / 'resumed'
  train_run(tiny_config(mnist_dir, resumed, epochs=1), log=QUIET)
  lines = []
  train_run(tiny_config(mnist_dir, resumed), log=lines.append)
  assert any('resuming after epoch 1 (step 4)' in line for line in lines)
  assert metrics_without_time(resumed) == metrics_without_time(out)
  for kind in ('spread', 'canvas'):
    for epoch in (1, 2, 3):
      frame = os.path.join('figs', kind, f'epoch_{epoch:04d}.png')
      assert file_bytes(resumed, frame) == file_bytes(out, frame), frame
    assert file_bytes(resumed, f'{kind}.gif') == file_bytes(out, f'{kind}.gif')
  _, other_seed = shared_run('seed1')
  assert metrics_without_time(other_seed) != metrics_without_time(out)


OTHER_VALUES = {'dataset': 'fashion_mnist', 'latent_dim': 3, 'batch_size': 8, 'encoder_architecture': 'conv',
                'decoder_architecture': 'conv', 'updates_per_epoch': 5, 'learning_rate': 2e-3, 'seed': 1,
                'binarize': 'dynamic', 'do_viz': False, 'beta': 0.5, 'kl_warmup_steps': 10, 'train_k': 2,
                'objective': 'iwae', 'likelihood': 'continuous_bernoulli', 'image_size': '28,28',
                'network_module': 'my_networks.py'}


def test_every_setting_a_resume_must_match_is_checked(reference_run, tmp_path):
  from vae.run.config import RESUME_KEYS
  assert sorted(OTHER_VALUES) == sorted(RESUME_KEYS)  # a new resume-checked setting gets a case here
  mnist_dir, out = reference_run
  run = tmp_path / 'run'
  shutil.copytree(out, run)
  clothes = str(tmp_path / 'clothes')
  write_mnist(clothes, dataset='fashion_mnist')
  for key, value in OTHER_VALUES.items():
    config = tiny_config(clothes if key == 'dataset' else mnist_dir, run, epochs=4, **{key: value})
    saved = json.load(open(out + '/flags.json'))[key]
    with pytest.raises(VAEError) as info:
      train_run(config, log=QUIET)
    assert str(info.value) == (f'{run} holds a run made with --{key}={saved}, not {value}; rerun with the same '
                               f'flags to resume it, or pass --fresh to start over (this deletes its checkpoints, '
                               f'metrics and frames)'), key
  assert metrics_without_time(run) == metrics_without_time(out)  # refused before any work


def test_fresh_starts_over(reference_run, tmp_path):
  mnist_dir, out = reference_run
  run = tmp_path / 'run'
  shutil.copytree(out, run)
  lines = []
  train_run(tiny_config(mnist_dir, run, epochs=1, fresh=True, seed=5), log=lines.append)
  assert not any('resuming after' in line for line in lines)
  assert json.load(open(run / 'flags.json'))['seed'] == 5
  assert [row['epoch'] for row in metrics_without_time(run)] == ['1']
  assert sorted(os.listdir(run / 'figs' / 'canvas')) == ['epoch_0001.png']


def test_a_second_run_on_the_same_directory_is_refused(reference_run, tmp_path):
  mnist_dir, _ = reference_run
  out = tmp_path / 'busy'
  out.mkdir()
  with RunLock(str(out)):
    with pytest.raises(OutputError, match=f'another run is using {out}'):
      train_run(tiny_config(mnist_dir, out), log=QUIET)
  assert sorted(os.listdir(out)) == ['.lock']


def test_eval_only_re_estimates_a_saved_run(reference_run, tmp_path):
  _, reference = reference_run
  out = str(tmp_path / 'copy')
  shutil.copytree(reference, out)  # the shared run stays as it was
  trained = json.load(open(os.path.join(out, 'evaluation.json')))
  # run.py's main on both command lines, in one process.
  same_k = str(tmp_path / 'same_k')
  shutil.copytree(reference, same_k)
  (status, stderr, stdout), empty, (same_status, same_stderr, _) = many_mains('run', [
      [f'--output_dir={out}', '--eval_only', '--eval_k=7'], [f'--output_dir={tmp_path / "nothing"}', '--eval_only'],
      [f'--output_dir={same_k}', '--eval_only', f'--eval_k={trained["eval_k"]}']], stdout=True)
  # With the k it was trained with, the estimate is the training run's to the last bit: the same model, images,
  # noise and chunks.
  assert (same_status, same_stderr) == (0, '')
  again_same_k = json.load(open(os.path.join(same_k, 'evaluation.json')))
  assert again_same_k['test_log_likelihood'] == trained['test_log_likelihood']
  assert (status, stderr) == (0, ''), stderr
  assert 'log-likelihood (IWAE, k=7)' in stdout
  again = json.load(open(os.path.join(out, 'evaluation.json')))
  assert again['eval_k'] == 7
  # Restored from the checkpoint, the same model and noise give the test ELBO the training run reported.
  np.testing.assert_allclose(again['test_elbo'], trained['test_elbo'], rtol=1e-6)
  assert empty == (1, f'error: {tmp_path / "nothing"} holds no trained run (it does not exist); train one there '
                      f'first\n', '')


@functools.lru_cache(maxsize=1)
def _trained_tiny_model():
  keras.utils.set_random_seed(0)
  images, _ = synthetic_digits(256, seed=0)
  images = images.reshape(-1, 784).astype(np.float32) / 255.0
  vae = model_lib.VAE(networks.build_encoder('fc', 2), networks.build_decoder('fc', 2))
  train_steps = engine.compile_steps(vae, keras.optimizers.Adam(2e-3), tf.constant(images),
                                        Config(batch_size=32), jit_compile=True)
  batches = iter(preprocess.train_batch_indices(256, 32, seed=0))
  for first in range(0, 400, 20):
    train_steps(tf.stack([next(batches) for _ in range(20)]), first)
  return vae, images[:64]


def test_log_importance_weights_match_numpy():
  vae, images = _trained_tiny_model()
  eps = np.random.default_rng(0).normal(size=(3, 4, 2)).astype(np.float32)
  got = vae.k_sample_terms(tf.constant(images[:4]), tf.constant(eps))['log_weight'].numpy()
  mean, log_var = (t.numpy().astype(np.float64) for t in vae.encode(images[:4]))
  z = mean + np.exp(0.5 * log_var) * eps
  logits = vae.decode(z.reshape(12, 2).astype(np.float32)).numpy().astype(np.float64).reshape(3, 4, 784)
  p = 1 / (1 + np.exp(-logits))
  x = images[:4].astype(np.float64)
  log_px_z = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), -1)
  log_pz = np.sum(-0.5 * z ** 2 - 0.5 * np.log(2 * np.pi), -1)
  log_qz = np.sum(-0.5 * eps ** 2 - 0.5 * log_var - 0.5 * np.log(2 * np.pi), -1)
  np.testing.assert_allclose(got, log_px_z + log_pz - log_qz, rtol=1e-4)


def numpy_iwae(vae, images, eps):
  """L_k per image, in float64 from the networks' raw outputs: log (1/k) sum_i w_i. images [B, D], eps [k, B, d]."""
  mean, log_var = (t.numpy().astype(np.float64) for t in vae.encode(images))
  z = mean + np.exp(0.5 * log_var) * eps.astype(np.float64)                            # [k, B, d]
  logits = vae.decode(z.reshape(-1, 2).astype(np.float32)).numpy().astype(np.float64).reshape(*z.shape[:2], -1)
  x = images.astype(np.float64)
  log_px_z = np.sum(x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits), -1)
  log_pz = np.sum(-0.5 * z ** 2 - 0.5 * np.log(2 * np.pi), -1)
  log_qz = np.sum(-0.5 * (z - mean) ** 2 / np.exp(log_var) - 0.5 * log_var - 0.5 * np.log(2 * np.pi), -1)
  log_w = log_px_z + log_pz - log_qz                                                    # [k, B]
  top = log_w.max(0)
  return top + np.log(np.mean(np.exp(log_w - top), 0))


@pytest.mark.parametrize('batch_size, max_rows', [(8, 10 ** 6), (4, 8)])
def test_the_iwae_estimate_equals_an_independent_numpy_computation(batch_size, max_rows):
  # The same noise, chunk by chunk as the estimate draws it; the log-mean-exp, and its - log k, done by numpy.
  vae, images = _trained_tiny_model()
  images, k, seed = images[:8], 7, 3
  got = evaluate.iwae_log_likelihood(vae, images, k, seed, batch_size=batch_size, max_rows=max_rows)
  samples_per_chunk = max(1, min(k, max_rows // batch_size))
  expected = []
  for start in range(0, len(images), batch_size):
    x = images[start:start + batch_size]
    eps = np.concatenate([tf.random.stateless_normal(
        [min(samples_per_chunk, k - first), len(x), 2],
        seed=keys.key(seed, keys.IWAE_NOISE, start * k + first)).numpy() for first in range(0, k,
                                                                                           samples_per_chunk)])
    expected.append(numpy_iwae(vae, x, eps))
  np.testing.assert_allclose(got, np.concatenate(expected), rtol=1e-5, atol=1e-3)


def numpy_fc_networks(vae):
  """The encoder and decoder of an fc VAE rebuilt in numpy from their weights alone (ReLU hidden layers)."""
  def dense_stack(model):
    weights = model.get_weights()
    layers = list(zip(weights[0::2], weights[1::2]))

    def forward(h):
      for i, (kernel, bias) in enumerate(layers):
        h = h @ kernel.astype(np.float64) + bias
        if i < len(layers) - 1:
          h = np.maximum(h, 0.0)
      return h
    return forward
  return dense_stack(vae.encoder), dense_stack(vae.decoder)


def test_the_estimate_is_independent_of_its_chunks_within_monte_carlo_error():
  """L_k from two chunkings of the samples against a numpy estimate that owes the code nothing but the weights
  (its own forward pass, its own noise): averaged over images and seeds, each lies within Monte Carlo error of
  E[L_k], which numpy estimates from independent draws of L_k. A chunking that lost samples (E[L_k] falls as k
  does) or mixed up the images' noise would be outside it."""
  vae, images = _trained_tiny_model()
  images, k, seeds = images[:16].astype(np.float64), 32, range(8)
  encode, decode = numpy_fc_networks(vae)
  params = encode(images)
  mean, log_var = params[:, :2], params[:, 2:]
  rng = np.random.default_rng(123)
  draws = []
  for _ in range(8):  # 8 x 10 independent draws of L_k for every image, ten at a time to bound the memory
    eps = rng.standard_normal((10, k, len(images), 2))
    z = mean + np.exp(0.5 * log_var) * eps                                            # [10, k, B, d]
    logits = decode(z.reshape(-1, 2)).reshape(10, k, len(images), -1)
    log_px_z = np.sum(images * -np.logaddexp(0, -logits) + (1 - images) * -np.logaddexp(0, logits), -1)
    log_w = log_px_z + np.sum(-0.5 * z ** 2, -1) - np.sum(-0.5 * eps ** 2 - 0.5 * log_var, -1)  # 2 pi cancels
    top = log_w.max(1)
    draws.append(top + np.log(np.mean(np.exp(log_w - top[:, None]), 1)))                 # [10, B]
  draws = np.concatenate(draws)                                                        # [80, B]
  expected, variance = draws.mean(0), draws.var(0)
  x = images.astype(np.float32)
  for batch_size, max_rows in ((16, 10 ** 6), (4, 20)):  # all k samples of 16 images at once; 5 at a time of 4
    estimates = np.stack([evaluate.iwae_log_likelihood(vae, x, k, seed, batch_size=batch_size, max_rows=max_rows)
                          for seed in seeds])                                          # [seeds, B]
    standard_error = np.sqrt(variance.mean() / estimates.size + variance.mean() / draws.size)
    assert abs(np.mean(estimates - expected)) < 4 * standard_error, (batch_size, np.mean(estimates - expected))
    assert np.all(np.abs(estimates.mean(0) - expected) < 5 * np.sqrt(variance / len(seeds)) + 1e-3)


def test_the_iwae_bound_is_above_the_elbo_and_rises_with_k():
  vae, images = _trained_tiny_model()
  elbo = evaluate.make_evaluator(vae)(images, evaluate.eval_noise(0, len(images), 2))['elbo'].mean()
  estimates = {k: evaluate.iwae_log_likelihood(vae, images, k, seed=0, batch_size=32, max_rows=640).mean()
               for k in (1, 10, 100)}
  assert estimates[100] > estimates[10] > estimates[1]
  assert estimates[100] > elbo


@pytest.mark.parametrize('mode', ['none', 'dynamic', 'static'])
def test_binarize_modes(mode):
  images, _ = synthetic_digits(100, seed=0)
  grey = images.reshape(-1, 784).astype(np.float32) / 255.0
  mnist = preprocess.Dataset(grey, None, grey[:50], None)
  train_images, test_images = preprocess.prepare_images(mnist, mode, seed=0)
  binary = lambda a: set(np.unique(a).tolist()) <= {0.0, 1.0}  # noqa: E731
  assert binary(train_images) == (mode == 'static')
  assert binary(test_images) == (mode != 'none')
  if mode != 'none':
    assert abs(test_images.mean() - grey[:50].mean()) < 0.01  # Bernoulli(intensity) keeps the mean


def test_every_seed_is_scored_on_the_same_binary_test_set():
  images, _ = synthetic_digits(100, seed=0)
  grey = images.reshape(-1, 784).astype(np.float32) / 255.0
  dataset = preprocess.Dataset(grey, None, grey[:50], None)
  test_sets = [preprocess.prepare_images(dataset, mode, seed)[1] for mode, seed in (('dynamic', 0), ('dynamic', 7),
                                                                                ('static', 3))]
  for other in test_sets[1:]:
    np.testing.assert_array_equal(other, test_sets[0])
  assert set(np.unique(test_sets[0]).tolist()) == {0.0, 1.0}
  assert abs(test_sets[0].mean() - grey[:50].mean()) < 0.01       # Bernoulli(intensity) draws
  static_train = [preprocess.prepare_images(dataset, 'static', seed)[0] for seed in (0, 1)]
  assert not np.array_equal(*static_train)  # the training copy still follows --seed


def test_dynamic_binarisation_in_the_engine_draws_new_pixels_at_every_step_and_the_same_at_the_same_step():
  images, _ = synthetic_digits(64, seed=0)
  grey = images.reshape(-1, 784).astype(np.float32) / 255.0
  indices = tf.constant(np.arange(32), tf.int32)
  batch = engine.batch_gatherer(grey, seed=0, dynamic_binarization=True)
  at = lambda step: batch(indices, tf.constant(step, tf.int64)).numpy()  # noqa: E731
  uncertain = (grey[:32] > 0.1) & (grey[:32] < 0.9)                      # pixels whose draw can go either way
  assert uncertain.sum() > 1000
  np.testing.assert_array_equal(at(5), at(5))                            # resumed step t sees step t's pixels
  assert set(np.unique(at(5)).tolist()) == {0.0, 1.0}
  assert np.mean(at(5)[uncertain] != at(6)[uncertain]) > 0.2             # the next step draws afresh
  assert np.mean(at(5)[uncertain] != engine.batch_gatherer(grey, 1, True)(indices, 5).numpy()[uncertain]) > 0.2
  mean = np.mean([at(step) for step in range(200)], axis=0)              # Bernoulli(intensity) on average
  assert np.abs(mean - grey[:32]).max() < 0.15
  np.testing.assert_array_equal(engine.batch_gatherer(grey, 0)(indices, 5).numpy(), grey[:32])  # 'none'


def test_a_larger_latent_space_draws_samples_reconstructions_and_a_pca_spread(shared_run):
  _, out = shared_run('latent5')
  out = Path(out)
  assert sorted(os.listdir(out / 'figs')) == ['reconstructions', 'samples', 'spread']
  for name in ('spread.gif', 'samples.gif', 'reconstructions.gif'):
    assert os.path.getsize(out / name) > 0
  assert not os.path.exists(out / 'canvas.gif')


# ------------------------------------------------------------------------------------------------ research tools


def test_the_rate_weight_ramps_linearly_to_beta_as_a_function_of_the_step():
  weights = [float(train.rate_weight_at(step, beta=2.0, kl_warmup_steps=10)) for step in (0, 1, 5, 10, 11, 500)]
  np.testing.assert_allclose(weights, [0.0, 0.2, 1.0, 2.0, 2.0, 2.0], rtol=1e-6)
  assert float(train.rate_weight_at(tf.constant(7, tf.int64), beta=0.5)) == 0.5  # no warm-up: beta from the start


def test_a_unit_is_active_when_its_mean_varies_by_more_than_a_hundredth_across_the_images():
  # Burda et al.'s threshold: Cov_x(E_q[z_u]) > 0.01. Means of +-s around an offset have variance exactly s^2.
  signs = np.tile([1.0, -1.0], 500)[:, None]                                      # [1000, 1]
  variances = np.array([0.0, 0.0099, 0.0101, 0.009, 0.011, 1.0])
  means = 7.0 + signs * np.sqrt(variances)                                        # [1000, 6]
  np.testing.assert_allclose(np.var(means, axis=0), variances, atol=1e-12)
  assert evaluate.active_units(means) == 3                 # 0.0101, 0.011, 1.0
  assert evaluate.active_units(means[:, [1, 3]]) == 0      # just below: not active
  assert evaluate.active_units(means[:, [2]]) == 1         # just above: active


def test_a_dimension_the_encoder_ignores_is_not_an_active_unit():
  vae, images = _trained_tiny_model()
  means = vae.encode(images)[0].numpy()
  assert evaluate.active_units(means) == 2
  posterior = vae.encoder.get_layer('posterior_params')
  kernel, bias = (w.numpy() for w in posterior.weights)
  try:
    kernel[:, 1], bias[1] = 0.0, 0.0        # the mean of z_2 no longer depends on x
    kernel[:, 3], bias[3] = 0.0, 0.0        # and its variance is exactly the prior's
    posterior.set_weights([kernel, bias])
    mean, log_var = (t.numpy() for t in vae.encode(images))
    assert evaluate.active_units(mean) == 1
    terms = evaluate.make_evaluator(vae)(images, tf.zeros([len(images), 2]))
    rates = evaluate.mean_rate_per_dimension(terms['rate_per_dimension'])
    assert rates[1] == 0.0 and rates[0] > 0.1
    np.testing.assert_allclose(rates.sum(), terms['rate'].mean(), rtol=1e-5)
  finally:
    _trained_tiny_model.cache_clear()  # the model was changed: later tests train a fresh one


def test_active_units_are_in_metrics_evaluation_and_tensorboard(reference_run):
  _, out = reference_run
  rows = metrics_without_time(out)
  evaluation = json.load(open(os.path.join(out, 'evaluation.json')))
  assert evaluation['active_units'] == int(rows[-1]['active_units'])
  assert len(evaluation['rate_per_dimension']) == 2
  last = {}  # each scalar's value at the last step written
  for name in os.listdir(os.path.join(out, 'tensorboard')):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(out, 'tensorboard', name)):
      for value in event.summary.value:
        if event.step == int(rows[-1]['step']) and value.HasField('tensor') and not value.tensor.string_val:
          last[value.tag] = float(tf.make_ndarray(value.tensor))
  assert last['active_units'] == evaluation['active_units']
  np.testing.assert_allclose([last['rate_per_dimension/z0'], last['rate_per_dimension/z1']],
                             evaluation['rate_per_dimension'], rtol=1e-5)


def test_explore_needs_only_the_export(reference_run, shared_run, tmp_path):
  mnist_dir, _ = reference_run
  runs = {d: Path(copy_run(shared_run(name)[1], tmp_path / name)) for d, name in ((2, 'reference'), (5, 'latent5'))}
  for out in runs.values():
    shutil.rmtree(out / 'checkpoints')  # the export and flags.json are all it reads
  elsewhere = tmp_path / 'pictures'
  results = many_mains('vae.commands.explore', [
      [f'--output_dir={runs[2]}', '--count=20', '--pairs=3', '--steps=5', '--prefix=t_'],
      [f'--output_dir={runs[5]}', '--count=20', '--pairs=3', '--steps=5', '--prefix=t_'],
      [f'--output_dir={runs[2]}', '--count=20', '--pairs=3', '--steps=5', '--prefix=t_', '--seed=1',
       f'--save_dir={elsewhere}', f'--data_dir={mnist_dir}']], stdout=True)
  for (status, stderr, stdout), kind in zip(results, ('linear', 'spherical', 'linear')):
    assert (status, stderr) == (0, '') and f'{kind} interpolation' in stdout
  for pictures in (runs[2] / 'explore', runs[5] / 'explore', elsewhere):
    assert np.asarray(Image.open(pictures / 't_samples.png')).shape == (2 * 28, 10 * 28)
    assert np.asarray(Image.open(pictures / 't_mean_reconstructions.png')).shape == (4 * 28, 10 * 28)
    assert np.asarray(Image.open(pictures / 't_interpolations.png')).shape == (3 * 28, 5 * 28)
    with Image.open(pictures / 't_interpolation.gif') as gif:
      assert gif.n_frames == 2 * 5 - 2 and gif.size == (3 * 28, 28)
  # --seed picks other prior draws and other test images.
  assert file_bytes(elsewhere, 't_samples.png') != file_bytes(runs[2], 'explore', 't_samples.png')


def angles_between_rows(path):
  unit = path / np.linalg.norm(path, axis=1, keepdims=True)
  return np.arccos(np.clip(np.sum(unit[:-1] * unit[1:], axis=1), -1.0, 1.0))


@pytest.mark.parametrize('a, b', [
    ([3.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]),          # unequal norms, 90 degrees apart
    ([1.0, 2.0, 0.5, -1.0], [-0.5, 1.0, 2.0, 0.3]),         # unequal norms, a generic angle
    ([1.0, -2.0, 0.5, 0.0], [-2.0, 4.0, -1.0, 0.0]),        # opposite directions: sin(angle) = 0
])
def test_spherical_interpolation_turns_at_a_constant_rate_and_moves_the_norm_linearly(a, b):
  from vae.commands import explore
  a, b, steps = np.array(a), np.array(b), 7
  path = explore.interpolate(a, b, steps)
  assert np.all(np.isfinite(path))
  np.testing.assert_allclose(path[0], a, atol=1e-9)
  np.testing.assert_allclose(path[-1], b, atol=1e-9)
  # The angle between the ends, from the dot product, split into equal turns (a normalised straight line is not).
  total = np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))
  np.testing.assert_allclose(angles_between_rows(path), np.full(steps - 1, total / (steps - 1)), atol=1e-9)
  np.testing.assert_allclose(np.linalg.norm(path, axis=1),
                             np.linspace(np.linalg.norm(a), np.linalg.norm(b), steps), atol=1e-9)
  if total < 3.0:  # a unique great circle: every point lies in the plane of a and b
    basis = np.linalg.qr(np.stack([a, b], axis=1))[0]
    np.testing.assert_allclose(path - path @ basis @ basis.T, 0.0, atol=1e-9)


def test_linear_interpolation_in_two_dimensions():
  from vae.commands import explore
  np.testing.assert_allclose(explore.interpolate([3.0, 0.0], [0.0, 3.0], 3)[1], [1.5, 1.5])


def test_explore_refuses_bad_flags_and_directories_with_one_line(reference_run, tmp_path):
  mnist_dir, out = reference_run
  foreign = tmp_path / 'foreign'
  (foreign / 'export').mkdir(parents=True)
  for part in ('encoder', 'decoder'):
    (foreign / 'export' / f'{part}.keras').write_bytes(b'not a keras file')
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  clothes = str(tmp_path / 'clothes')
  write_mnist(clothes, dataset='fashion_mnist')
  cases = [
      (['--count=15'], '--count must be a positive multiple of 10, got 15'),
      (['--count=0'], '--count must be a positive multiple of 10, got 0'),
      (['--pairs=0'], '--pairs must be a positive integer, got 0'),
      (['--steps=1'], '--steps must be at least 2, got 1'),
      (['--seed=-1'], '--seed must be >= 0, got -1'),
      (['--nope=1'], "Unknown command line flag 'nope' (see python -m vae.commands.explore --help)"),
      ([f'--output_dir={tmp_path / "nothing"}'], f'--output_dir {tmp_path / "nothing"} does not exist'),
      ([f'--output_dir={tmp_path}'], f'{tmp_path} holds no exported model (export/encoder.keras and '
                                     f'export/decoder.keras); train a run there first'),
      ([f'--output_dir={out}', f'--save_dir={blocker}'], f'save directory {blocker} is a file, not a directory'),
      ([f'--output_dir={out}', f'--data_dir={clothes}'],
       f'{clothes}/train-images-idx3-ubyte.gz holds Fashion-MNIST\'s training images, not MNIST\'s: use '
       f'--dataset=fashion_mnist to train on Fashion-MNIST, or point --data_dir at the MNIST files'),
  ]
  results = many_mains('vae.commands.explore', [arguments for arguments, _ in cases] + [[f'--output_dir={foreign}']])
  for (arguments, message), result in zip(cases, results):
    assert result == (1, f'error: {message}\n'), arguments
  status, stderr = results[-1]
  assert status == 1 and len(stderr.splitlines()) == 1
  assert stderr.startswith(f'error: {foreign} does not hold a run exported by this project (')
  assert not os.path.exists(os.path.join(out, 'explore'))
