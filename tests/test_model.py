import inspect
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from PIL import Image

from vae import data, evaluate, preprocess, model as model_lib, networks, train, viz
from vae.run import engine, keys
from vae.sources import idx
from vae.commands import plain_loop
from vae.run.config import Config
from conftest import REPO_ROOT, Started, refusing_port, synthetic_digits, unexpected_stderr, user_env, write_mnist


def numpy_rate(mean, log_var):
  var = np.exp(log_var)
  # KL between diagonal Gaussians, written as the textbook log-ratio of determinants plus trace and mean terms.
  return 0.5 * (np.sum(var, -1) + np.sum(mean ** 2, -1) - mean.shape[-1] - np.sum(log_var, -1))


def numpy_distortion(x, logits):
  p = 1.0 / (1.0 + np.exp(-logits))
  return -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), -1)


def test_rate_matches_an_independent_numpy_kl():
  rng = np.random.default_rng(0)
  mean = rng.normal(size=(6, 4))
  log_var = rng.normal(size=(6, 4))
  got = model_lib.rate(tf.constant(mean), tf.constant(log_var)).numpy()
  np.testing.assert_allclose(got, numpy_rate(mean, log_var), rtol=1e-10)
  # Zero exactly at the prior, positive elsewhere.
  assert model_lib.rate(tf.zeros([2, 3]), tf.zeros([2, 3])).numpy().tolist() == [0.0, 0.0]
  assert np.all(got > 0)


def test_distortion_matches_numpy_and_stays_finite_for_extreme_logits():
  rng = np.random.default_rng(1)
  x = rng.uniform(size=(5, 784))  # grey-level targets, as the original used
  logits = rng.normal(scale=3.0, size=(5, 784))
  got = model_lib.distortion(tf.constant(x), tf.constant(logits)).numpy()
  np.testing.assert_allclose(got, numpy_distortion(x, logits), rtol=1e-10)
  # A logit of 200 makes sigmoid round to exactly 1.0 in float32: the naive formula gives inf, ours a number.
  extreme = model_lib.distortion(tf.zeros([1, 784]), tf.fill([1, 784], 200.0)).numpy()
  np.testing.assert_allclose(extreme, [784 * 200.0], rtol=1e-6)


def test_reparameterize_uses_the_standard_deviation():
  z = model_lib.reparameterize(tf.constant([[1.0, -1.0]]), tf.constant([[np.log(4.0), 0.0]], tf.float32),
                               tf.constant([[1.0, 2.0]]))
  np.testing.assert_allclose(z.numpy(), [[3.0, 1.0]], rtol=1e-6)


def small_pair(latent_dim, units=32):
  """A one-hidden-layer encoder and decoder with the built-in networks' inputs and outputs, for identities that hold
  for any networks: tens of thousands of draws through them cost little."""
  x = keras.Input(shape=(784,))                                            # [B, 784]
  h = keras.layers.Dense(units, activation='relu')(x)                      # [B, units]
  encoder = keras.Model(x, [keras.layers.Dense(latent_dim)(h), keras.layers.Dense(latent_dim)(h)])  # mean, log_var
  z = keras.Input(shape=(latent_dim,))                                     # [B, latent_dim]
  decoder = keras.Model(z, keras.layers.Dense(784)(keras.layers.Dense(units, activation='relu')(z)))  # [B, 784]
  return encoder, decoder


def test_the_monte_carlo_form_averages_to_the_closed_form_elbo():
  # (1) E_q[log p(x|z) + log p(z) - log q(z|x)] = (2) E_q[log p(x|z)] - KL: L_1 is the ELBO in expectation.
  keras.utils.set_random_seed(0)
  vae = model_lib.VAE(*small_pair(2))
  images, _ = synthetic_digits(3, seed=5)
  x = tf.constant(images.reshape(3, 784).astype(np.float32) / 255.0)
  num_samples = 20000
  eps = tf.random.stateless_normal([num_samples, 3, 2], seed=[1, 2])
  monte_carlo = vae.k_sample_terms(x, eps)['log_weight'].numpy().astype(np.float64)                            # [S, B]
  closed = vae.terms(tf.tile(x, [num_samples, 1]), tf.reshape(eps, [-1, 2]))['elbo'].numpy()
  closed = closed.reshape(num_samples, 3).astype(np.float64)                                 # [S, B]
  # Per draw the two differ by log p(z) - log q(z|x) + KL, whose mean is 0; both share the same log p(x|z).
  difference = monte_carlo - closed
  assert np.all(np.abs(difference.mean(0)) < 4 * difference.std(0) / np.sqrt(num_samples))
  assert np.all(difference.std(0) > 0.01)  # the two forms really are different estimators
  assert np.all(np.abs(monte_carlo.mean(0) - closed.mean(0)) < 0.05)


def _train_a_few_steps(encoder, decoder, jit_compile, steps=60, steps_per_call=10):
  keras.utils.set_random_seed(0)
  images, _ = synthetic_digits(256, seed=0)
  images = tf.constant(images.reshape(-1, 784).astype(np.float32) / 255.0)
  vae = model_lib.VAE(networks.build_encoder(encoder, 2), networks.build_decoder(decoder, 2))
  train_steps = engine.compile_steps(vae, keras.optimizers.Adam(1e-3), images, Config(batch_size=32),
                                       jit_compile=jit_compile)
  evaluate_fn = evaluate.make_evaluator(vae, batch_size=100)
  eps = evaluate.eval_noise(0, 256, 2)
  before = evaluate_fn(images.numpy(), eps)['elbo'].mean()
  batches = iter(preprocess.train_batch_indices(256, 32, seed=0))
  losses = []
  for first in range(0, steps, steps_per_call):
    losses.extend(train_steps(tf.stack([next(batches) for _ in range(steps_per_call)]), first).numpy())
  after = evaluate_fn(images.numpy(), eps)['elbo'].mean()
  return before, after, losses


def test_the_plain_training_loop_lowers_the_loss():
  keras.utils.set_random_seed(0)
  images, _ = synthetic_digits(256, seed=0)
  images = images.reshape(-1, 784).astype(np.float32) / 255.0
  vae = model_lib.VAE(networks.build_encoder('fc', 2), networks.build_decoder('fc', 2))
  printed = []
  losses = train.train_loop(vae, keras.optimizers.Adam(1e-3), images, steps=40, batch_size=32, log=printed.append,
                            log_every=20)
  assert len(losses) == 40 and np.all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 100, (losses[:5], losses[-5:])
  assert [line.split(':')[0] for line in printed] == ['step 0', 'step 20', 'step 39']


def test_a_few_fc_steps_raise_the_elbo():
  before, after, losses = _train_a_few_steps('fc', 'fc', jit_compile=True)
  assert np.all(np.isfinite(losses))
  assert after > before + 50, (before, after)
  assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_a_few_conv_steps_raise_the_elbo():
  # Three steps per call: without XLA each step in a call is traced again (engine.compile_steps).
  before, after, losses = _train_a_few_steps('conv', 'conv', jit_compile=False, steps=30, steps_per_call=3)
  assert after > before + 20, (before, after)


def test_training_noise_is_a_pure_function_of_seed_and_step():
  a = engine.train_noise(3, 7, 4, 2).numpy()
  np.testing.assert_array_equal(a, engine.train_noise(3, 7, 4, 2).numpy())
  assert not np.array_equal(a, engine.train_noise(3, 8, 4, 2).numpy())
  assert not np.array_equal(a, engine.train_noise(4, 7, 4, 2).numpy())


def test_compact_images_are_exact_or_refused():
  grey = (np.arange(256, dtype=np.float32)[None, :].repeat(3, 0) * np.float32(1.0 / 255.0))
  codes, scale = engine.compact_images(grey)
  assert codes.dtype == np.uint8
  np.testing.assert_array_equal(codes.astype(np.float32) * scale, grey)
  binary = np.array([[0.0, 1.0, 1.0]], np.float32)
  codes, scale = engine.compact_images(binary)
  assert codes.dtype == np.uint8
  np.testing.assert_array_equal(codes.astype(np.float32) * scale, binary)
  other = np.array([[0.123456]], np.float32)
  kept, scale = engine.compact_images(other)
  assert scale is None and kept.dtype == np.float32


@pytest.mark.parametrize('jit_compile', [True, False])
def test_several_steps_in_one_call_equal_the_same_steps_one_call_each(jit_compile, op_determinism):
  images, _ = synthetic_digits(128, seed=1)
  images = images.reshape(-1, 784).astype(np.float32) / 255.0
  indices = tf.constant(np.random.default_rng(0).permutation(128)[:96].reshape(6, 16), tf.int32)  # 6 steps of 16

  traced = []

  def trained(calls):
    keras.utils.set_random_seed(0)
    vae = model_lib.VAE(networks.build_encoder('fc', 2), networks.build_decoder('fc', 2))
    train_steps = engine.compile_steps(vae, keras.optimizers.Adam(1e-2), images,
                                         Config(batch_size=16, seed=3, binarize='dynamic'), jit_compile=jit_compile)
    losses = np.concatenate([train_steps(indices[start:stop], 10 + start).numpy() for start, stop in calls])
    traced.append(train_steps.compiled.experimental_get_tracing_count())
    return losses, [v.numpy() for v in vae.trainable_variables]

  together, together_weights = trained([(0, 6)])
  one_by_one, one_by_one_weights = trained([(i, i + 1) for i in range(6)])
  assert traced == [1, 1]  # plain Python step numbers do not retrace (nor recompile) the steps
  assert together.shape == (6,) and len(set(together.tolist())) == 6  # six different batches, six losses
  np.testing.assert_allclose(together, one_by_one, rtol=1e-5)
  for a, b in zip(together_weights, one_by_one_weights):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('jit_compile', [False, True])
def test_the_compiled_steps_are_plain_train_step_calls(jit_compile, op_determinism):
  """Six engine steps in one call against six calls of `train.train_step` with the same batches and noise.

  Without XLA the engine's steps are the same kernels in the same order: equal bit for bit. With XLA (the fc/fc
  path) XLA fuses and orders the arithmetic its own way, so the results agree to float32 rounding only; and
  `tf.random.stateless_normal` draws other numbers for the same key under XLA, so the plain steps are handed the
  noise drawn under XLA too.
  """
  images, _ = synthetic_digits(64, seed=2)
  images = images.reshape(-1, 784).astype(np.float32) / 255.0
  rng = np.random.default_rng(0)
  indices = np.stack([rng.permutation(64)[:16] for _ in range(6)]).astype(np.int32)     # 6 steps of 16

  def fresh():
    keras.utils.set_random_seed(0)
    vae = model_lib.VAE(networks.build_encoder('fc', 2), networks.build_decoder('fc', 2))
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(vae.trainable_variables)
    return vae, optimizer

  vae, optimizer = fresh()
  compiled = engine.compile_steps(vae, optimizer, images, Config(batch_size=16, seed=4), jit_compile=jit_compile)
  losses = compiled(indices, 7).numpy()
  plain_vae, plain_optimizer = fresh()
  noise = tf.function(lambda step: engine.train_noise(4, step, 16, 2), jit_compile=jit_compile)
  plain_step = tf.function(train.train_step)
  plain_losses = np.array([plain_step(plain_vae, plain_optimizer, tf.constant(images[indices[s]]),
                                      noise(tf.constant(7 + s, tf.int64))).numpy() for s in range(6)])
  weights = [(a.numpy(), b.numpy()) for a, b in zip(vae.trainable_variables, plain_vae.trainable_variables)]
  if not jit_compile:
    np.testing.assert_array_equal(losses, plain_losses)
    for a, b in weights:
      np.testing.assert_array_equal(a, b)
  else:
    # Measured on the CPUs this was written on: 1.3e-7 relative in the losses, 5e-6 in any weight.
    np.testing.assert_allclose(losses, plain_losses, rtol=1e-5)
    for a, b in weights:
      np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    outside_xla = engine.train_noise(4, 7, 16, 2).numpy()
    assert not np.array_equal(outside_xla, noise(tf.constant(7, tf.int64)).numpy())  # why the noise is handed over


def test_the_engine_and_the_evaluation_trace_the_model_as_written():
  # Their graphs are traced from the model's Python as it is (straight-line code: autograph would have nothing to
  # rewrite, and rewriting it only lengthens every run's start), so the traced code is the code a reader sees.
  keras.utils.set_random_seed(0)
  vae = model_lib.VAE(networks.build_encoder('fc', 2), networks.build_decoder('fc', 2))
  traced_from = []
  encode = vae.encode

  def recorded_encode(*args, **kwargs):
    traced_from.append(inspect.currentframe().f_code.co_filename)  # autograph runs a rewritten copy elsewhere
    return encode(*args, **kwargs)
  vae.encode = recorded_encode
  images, _ = synthetic_digits(16, seed=3)
  images = images.reshape(-1, 784).astype(np.float32) / 255.0
  steps = engine.compile_steps(vae, keras.optimizers.Adam(1e-3), images, Config(batch_size=16), jit_compile=True)
  steps(np.arange(16, dtype=np.int32)[None], 0)
  evaluate.make_evaluator(vae)(images, evaluate.eval_noise(0, 16, 2))
  evaluate.iwae_log_likelihood(vae, images, k=2, seed=0)
  assert len(traced_from) == 3 and set(traced_from) == {__file__}


def test_the_eager_loop_runs_the_model_in_python_at_every_step(monkeypatch):
  """--eager: a breakpoint in VAE.terms stops at every step with concrete tensors; traced, it never does."""
  seen = []
  terms = model_lib.VAE.terms

  def counting_terms(self, x, eps, training=False):
    seen.append(hasattr(x, 'numpy') and hasattr(eps, 'numpy'))  # concrete (eager) tensors, not symbolic ones
    return terms(self, x, eps, training)

  monkeypatch.setattr(model_lib.VAE, 'terms', counting_terms)
  images, _ = synthetic_digits(64, seed=0)
  images = images.reshape(-1, 784).astype(np.float32) / 255.0

  def run(eager):
    seen.clear()
    keras.utils.set_random_seed(0)
    vae = model_lib.VAE(networks.build_encoder('fc', 2), networks.build_decoder('fc', 2))
    losses = train.train_loop(vae, keras.optimizers.Adam(1e-3), images, steps=5, batch_size=16, eager=eager,
                              log=lambda line: None)
    return losses, list(seen)

  eager_losses, eager_calls = run(eager=True)
  assert eager_calls == [True] * 5
  traced_losses, traced_calls = run(eager=False)
  assert traced_calls and not any(traced_calls) and len(traced_calls) < 5  # symbolic, while tracing only
  np.testing.assert_allclose(eager_losses, traced_losses, rtol=1e-4)  # the same training either way


def test_every_stream_key_is_distinct_across_seeds_tags_and_counters():
  counters = (0, 1, 2, 99, 12345, 2 ** 40 - 1)
  pairs = [keys.key_pair(seed, tag, counter) for seed in range(100) for tag in keys.TAGS for counter in counters]
  assert len(set(pairs)) == len(pairs)
  assert len(set(keys.TAGS)) == len(keys.TAGS)
  # The old scheme (seed * 4 + tag) gave seed s's dynamic binarisation the training noise of seed s + 1.
  assert keys.key_pair(0, keys.DYNAMIC_BINARIZATION, 7) != keys.key_pair(1, keys.TRAIN_NOISE, 7)
  # The TensorFlow key is the same pair, for Python and tensor counters alike.
  assert tuple(keys.key(3, keys.IWAE_NOISE, 5).numpy()) == keys.key_pair(3, keys.IWAE_NOISE, 5)
  assert tuple(keys.key(3, keys.TRAIN_NOISE, tf.constant(9, tf.int64)).numpy()) == \
      keys.key_pair(3, keys.TRAIN_NOISE, 9)
  with pytest.raises(ValueError, match='outside'):
    keys.key(0, keys.TRAIN_NOISE, 2 ** 40)


def test_the_plain_loop_command_runs_the_plain_loop_on_mnist_files(tmp_path, capsys, request):
  mnist_dir = str(tmp_path / 'mnist')
  write_mnist(mnist_dir)
  # As a user starts it, with a 3-d latent space (prior samples instead of the canvas), while the same main
  # runs here with the default 2-d one.
  samples = tmp_path / 'samples.png'
  shell = Started([sys.executable, '-m', 'vae.commands.plain_loop', f'--data_dir={mnist_dir}', '--steps=2', '--batch_size=16',
                   '--latent_dim=3', '--eager', f'--picture={samples}'], cwd=REPO_ROOT, env=user_env())
  request.addfinalizer(shell.stop)  # ended even when an assertion below fails first
  picture = tmp_path / 'pictures' / 'canvas.png'
  status = plain_loop.main(['vae-plain-loop', f'--data_dir={mnist_dir}', '--steps=60', '--batch_size=32',
                       '--learning_rate=3e-3', f'--picture={picture}'])
  out, err = capsys.readouterr()
  assert (status, err) == (0, '')
  lines = out.splitlines()
  assert lines[0] == f'MNIST from {mnist_dir}: 256 training and 64 test images; 60 steps of 32'
  losses = {int(line.split(':')[0][5:]): float(line.split()[-1]) for line in lines if line.startswith('step ')}
  assert sorted(losses) == [0, 59] and losses[59] < losses[0] - 100
  elbo_line = next(line for line in lines if line.startswith('test elbo '))
  elbo, rate, distortion = (float(elbo_line.split()[i]) for i in (2, 4, 6))
  assert elbo == pytest.approx(-(rate + distortion), abs=0.02) and elbo > -losses[0]
  assert lines[-1] == f'wrote {picture}'
  assert np.asarray(Image.open(picture)).shape == (15 * 28, 15 * 28)  # the canvas of the 2-d latent plane
  result = shell.finished()
  assert result.returncode == 0 and unexpected_stderr(result.stderr) == []  # no start-up line, either CPU path
  assert result.stdout.splitlines()[0].endswith('2 steps of 16, eagerly')
  assert result.stdout.splitlines()[-1] == f'wrote {samples}'
  assert np.asarray(Image.open(samples)).shape == (10 * 28, 10 * 28)  # 100 prior samples
  assert plain_loop.main(['vae-plain-loop', '--help']) == 0
  help_text = capsys.readouterr().out
  for name in ('data_dir', 'steps', 'batch_size', 'latent_dim', 'learning_rate', 'seed', 'beta', 'kl_warmup_steps',
               'picture'):
    assert f'--{name}' in help_text, name


def test_the_plain_loop_command_refuses_bad_input_with_one_line(tmp_path, capsys, monkeypatch):
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  with refusing_port() as port:
    monkeypatch.setitem(data.SOURCES, 'mnist', data.SOURCES['mnist']._replace(mirrors=(f'http://127.0.0.1:{port}/',)))
    cases = [
        (['--steps=0'], '--steps must be a positive integer, got 0'),
        (['--latent_dim=0'], '--latent_dim must be a positive integer, got 0'),
        (['--beta=-1'], '--beta must be a finite number >= 0, got -1.0'),
        (['--epochs=3'], "Unknown command line flag 'epochs' (see vae-plain-loop --help)"),
        (['--objective=vae'], 'flag --objective=vae: value should be one of <elbo|iwae> (see vae-plain-loop '
         '--help)'),
        (['surplus'], 'unexpected arguments: surplus (flags look like --name=value)'),
        ([f'--data_dir={tmp_path / "empty"}'], 'MNIST could not be downloaded: no mirror could be reached '
         f'(Connection refused). Put {", ".join(n + ".gz" for n in idx.FILE_NAMES)} into {tmp_path / "empty"}, '
         'or pass --data_dir=DIR pointing at them'),
    ]
    for arguments, message in cases:
      assert plain_loop.main(['vae-plain-loop', *arguments]) == 1, arguments
      assert capsys.readouterr().err == f'error: {message}\n', arguments
  mnist_dir = str(tmp_path / 'mnist')
  write_mnist(mnist_dir)
  assert plain_loop.main(['vae-plain-loop', f'--data_dir={mnist_dir}', f'--picture={blocker}/canvas.png']) == 1
  assert capsys.readouterr().err == f'error: picture directory {blocker} is a file, not a directory\n'
  assert plain_loop.main(['vae-plain-loop', f'--data_dir={mnist_dir}', f'--picture={tmp_path}']) == 1
  assert capsys.readouterr().err == f'error: --picture {tmp_path} is a directory; name a .png file to write\n'

  def ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt
  monkeypatch.setattr(train, 'train_loop', ctrl_c)
  assert plain_loop.main(['vae-plain-loop', f'--data_dir={mnist_dir}', f'--picture={tmp_path / "canvas.png"}']) == 130
  assert capsys.readouterr().err == 'error: interrupted\n'


def test_every_stream_is_a_function_of_seed_stream_and_counter_alone(op_determinism):
  """Each random stream of vae/run/keys.py's table gives the same numbers whatever the process drew before it:
  nothing comes from TensorFlow's, numpy's or Python's global generators, whose state depends on history."""
  import random

  images, _ = synthetic_digits(30, seed=5)
  images = images.reshape(-1, 784).astype(np.float32) / 255.0
  keras.utils.set_random_seed(0)
  vae = model_lib.VAE(networks.build_encoder('fc', 3), networks.build_decoder('fc', 3))
  xla_noise = tf.function(lambda step: engine.train_noise(3, step, 4, 3), jit_compile=True)

  def every_stream():
    return {
        'training noise': engine.train_noise(3, 7, 4, 3, num_samples=2).numpy(),
        'training noise under XLA': xla_noise(tf.constant(7, tf.int64)).numpy(),
        'evaluation noise': evaluate.eval_noise(3, 30, 3).numpy(),
        'IWAE samples': evaluate.iwae_log_likelihood(vae, images, 4, 3, batch_size=10, max_rows=20),
        'dynamic binarisation': engine.bernoulli_pixels(tf.constant(images), keys.key(3, keys.DYNAMIC_BINARIZATION,
                                                                                        5)).numpy(),
        'static binarisation': preprocess.binarized(images, 3, 0),
        'frame inputs': viz.fixed_frame_inputs(3, 3, images)['samples'].numpy(),
    }

  first = every_stream()
  # Another history: every global generator seeded and drawn from, and TensorFlow's op seeds advanced.
  tf.random.set_seed(99)
  tf.random.normal([100])
  tf.random.uniform([7])
  np.random.seed(5)
  np.random.rand(100)
  random.seed(3)
  random.random()
  keras.utils.set_random_seed(11)
  second = every_stream()
  assert list(first) == list(second)
  for name in first:
    np.testing.assert_array_equal(first[name], second[name], err_msg=name)
  assert len({first[name].tobytes() for name in first}) == len(first)  # and no two streams share their numbers
