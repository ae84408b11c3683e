"""Shared fixtures: tiny synthetic MNIST-format data sets, written with the package's own IDX writer.

No test reads real data or uses the network: tests/known_data/no_network.py refuses every name lookup and every
connection beyond loopback, here and in every process the tests start, and `network_guard` fails the test that
tried. A test of an offline path makes it offline itself, with a port on 127.0.0.1 that refuses connections
(`refusing_port`, `offline_env`). The synthetic digits are learnable (each class is a fixed random
stroke pattern plus pixel noise), so a few training steps visibly lower the loss.

vae/data.py accepts an MNIST or Fashion-MNIST file only if its contents have a known fingerprint. Every synthetic
file `write_mnist` writes is made known as the data set it stands for: in this process directly, and in every
process the tests spawn through tests/known_data/sitecustomize.py, which reads the registry file named by
VAE_TEST_KNOWN_CONTENTS. So the tests control the fingerprints and never need the real data.

Time: the tiny runs several files read are trained once per session, by the first pytest-xdist worker that needs
each (`shared_run`), and slow subprocesses can be started together (`Started`), so that the suite stays within
minutes on a 2-core machine.
"""

import atexit
import contextlib
import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

SITE_DIR = os.path.join(REPO_ROOT, 'tests', 'known_data')
sys.path.insert(0, SITE_DIR)

import no_network  # noqa: E402

from vae import data, preprocess
from vae.sources import idx  # noqa: E402

_TEST_FILES = tempfile.mkdtemp(prefix='vae-tests-')
atexit.register(shutil.rmtree, _TEST_FILES, ignore_errors=True)  # this process's registry and network log
KNOWN_CONTENTS_FILE = os.path.join(_TEST_FILES, 'known_contents.json')
os.environ['VAE_TEST_KNOWN_CONTENTS'] = KNOWN_CONTENTS_FILE
NETWORK_LOG = os.path.join(_TEST_FILES, 'network_attempts.log')
os.environ[no_network.LOG_VARIABLE] = NETWORK_LOG
os.environ['PYTHONPATH'] = os.pathsep.join([SITE_DIR] + [p for p in [os.environ.get('PYTHONPATH')] if p])
no_network.install()


def _network_attempts():
  try:
    with open(NETWORK_LOG) as f:
      return f.read().splitlines()
  except FileNotFoundError:
    return []


_reported = [0]  # attempts already reported, by the hook or the fixture below


def _new_network_attempts():
  attempts = _network_attempts()
  new, _reported[0] = attempts[_reported[0]:], len(attempts)
  return new


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
  """Fails the test if it, or any process it started, tried a name lookup or a connection beyond loopback."""
  _new_network_attempts()
  result = yield
  attempts = _new_network_attempts()
  if attempts:
    pytest.fail('the test tried the network: ' + '; '.join(attempts[:5]), pytrace=False)
  return result


@pytest.fixture(autouse=True)
def network_guard():
  """The same for a test's fixtures, in their set-up and tear-down."""
  _new_network_attempts()
  yield
  attempts = _new_network_attempts()
  if attempts:
    pytest.fail('a fixture tried the network: ' + '; '.join(attempts[:5]), pytrace=False)


# The files that take longest on 2 cores, longest first. pytest-xdist hands each worker whole files in the order
# they were collected (`--no-loadscope-reorder`, pytest.ini), so these start first and the workers end together;
# the other files follow in their usual order. Reorder it when `--durations` shows that a file's time changed.
LONGEST_FIRST = ['test_research.py', 'test_run.py', 'test_model.py', 'test_interrupt.py', 'test_bench.py',
                 'test_your_own.py', 'test_run_directory.py', 'test_datasets.py', 'test_wiring.py',
                 'test_objectives.py', 'test_faults.py', 'test_fingerprints.py', 'test_likelihood.py']


def pytest_collection_modifyitems(items):
  def rank(item):
    name = os.path.basename(str(item.path))
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
  items.sort(key=rank)  # stable: the tests of a file keep their order


def _set_op_determinism(enabled):
  from tensorflow.python.framework import config as tf_config  # the switch tf.config.experimental turns on
  (tf_config.enable_op_determinism if enabled else tf_config.disable_op_determinism)()


@pytest.fixture(autouse=True)
def op_determinism_off_between_tests():
  """Every test starts with TensorFlow's op determinism off, as a process starts, whatever tests ran before:
  run.py turns it on for its run and leaves it on (a run's process ends with the run), and so does `train_run`. A test that relies
  on deterministic kernels outside a run asks for `op_determinism`."""
  yield
  if 'tensorflow' in sys.modules:
    _set_op_determinism(False)


def _framework_seeds():
  """(TensorFlow's global seed, Keras's global seed and seed generator), or None where they are not loaded."""
  if 'tensorflow' not in sys.modules or 'keras' not in sys.modules:
    return None
  from keras.src.backend.common import global_state
  from tensorflow.python.eager import context
  return (context.global_seed(), global_state.get_global_attribute('global_random_seed'),
          global_state.get_global_attribute('global_seed_generator'))


@pytest.fixture(autouse=True)
def global_generators_restored():
  """The global random states are as they were before the test, whatever it seeded or drew
  (keras.utils.set_random_seed seeds Python's, numpy's, TensorFlow's and Keras's), so that no test depends on
  which tests ran before it: Python's and numpy's generator states, and TensorFlow's and Keras's global seeds
  (the seeds, not the op-level counters TensorFlow keeps under them)."""
  import random
  python_state, numpy_state, framework = random.getstate(), np.random.get_state(), _framework_seeds()
  yield
  random.setstate(python_state)
  np.random.set_state(numpy_state)
  if framework is not None:
    from keras.src.backend.common import global_state
    from tensorflow.python.eager import context
    tf_seed, keras_seed, keras_generator = framework
    context.set_global_seed(tf_seed)
    global_state.set_global_attribute('global_random_seed', keras_seed)
    global_state.set_global_attribute('global_seed_generator', keras_generator)


def train_run(config, **kwargs):
  """`vae.run.epochs.start_or_resume` as run.py calls it: with TensorFlow's deterministic kernels switched on first,
  for the whole process, as the entry point does."""
  from vae.run.epochs import start_or_resume
  _set_op_determinism(True)
  return start_or_resume(config, **kwargs)


@pytest.fixture
def op_determinism():
  """TensorFlow's deterministic kernels for this test, switched on explicitly as run.py does for a run."""
  _set_op_determinism(True)


@contextlib.contextmanager
def refusing_port():
  """A port on 127.0.0.1 that refuses every connection while the block runs: bound, so no one else can take it,
  and never listening."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    yield s.getsockname()[1]


@contextlib.contextmanager
def offline_here(port):
  """This process offline while the block runs, as `offline_env` makes a process the tests start
  (tests/known_data/offline.py)."""
  import offline
  undo = offline.refuse_downloads(port)
  try:
    yield
  finally:
    undo()


def offline_env(port):
  """The environment variable that makes a process the tests start offline: every mirror and TensorFlow
  Datasets' connection check point at `port` (tests/known_data/sitecustomize.py)."""
  return {'VAE_TEST_REFUSING_PORT': str(port)}
_registered = {}
# Synthetic files never share contents unless they are the same file of the same set: each (seed, split, data set)
# draws from a stream of its own.
SPLIT_STREAMS = {'train': 0, 'test': 1}
DATASET_STREAMS = {'mnist': 0, 'fashion_mnist': 1}


def make_known(dataset, paths):
  """Makes the contents of the IDX files {name: path} known as `dataset`'s, here and in spawned processes."""
  for name, path in paths.items():
    kind = 'images' if 'images' in name else 'labels'
    _registered[idx.read_idx_and_fingerprint(path, kind)[1]] = (dataset, name)
  data.KNOWN_CONTENTS.update(_registered)
  # Replaced whole, never rewritten in place: a process starting meanwhile reads the old registry or the new one.
  with open(KNOWN_CONTENTS_FILE + '.tmp', 'w') as f:
    json.dump(_registered, f)
  os.replace(KNOWN_CONTENTS_FILE + '.tmp', KNOWN_CONTENTS_FILE)


# What may not reach a user's terminal, on any TensorFlow build: a line of ours or a Python traceback, and the
# TensorFlow noise vae/commands/quiet.py and TF_CPP_MIN_LOG_LEVEL are there to keep off it (absl-format info and warning
# lines, absl's preamble, TensorFlow's Python warnings). A build's own error-level lines (a CUDA build without a
# GPU, say) are that build's business and may appear.
_NOT_FOR_THE_USER = re.compile(r'^(error: |Traceback |WARNING: All log messages before absl|[IW]\d{4} |'
                               r'WARNING:tensorflow|.*oneDNN custom operations are on)')


def unexpected_stderr(stderr):
  """The lines of a successful command's stderr that must not be there (see above); [] when it is quiet."""
  return [line for line in stderr.splitlines() if _NOT_FOR_THE_USER.match(line)]


def user_env(**extra):
  """The environment a user starts run.py with: the test process's, less its own TensorFlow log setting."""
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  env.update(extra)
  return env


def run_py(*args, cwd=None, timeout=300, **env):
  """`python run.py ARGS` as a user starts it; CompletedProcess with text output. The timeout only guards
  against a hang."""
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'run.py'), *args], cwd=cwd, env=user_env(**env),
                        capture_output=True, text=True, timeout=timeout)


def many_mains(module, command_lines, stdout=False):
  """[(exit status, stderr)] of `module`'s main ('run' or 'vae.commands.explore') on each command line, run in this
  process as a fresh process would see each (tests/many_mains.py); with `stdout`, [(exit status, stderr, stdout)].
  A command line {'module': M, 'argv': [...]} runs module M's main instead."""
  from many_mains import many_mains as run_all
  return [tuple(r if stdout else r[:2]) for r in run_all(module, command_lines)]


def wait_until_paused(process, guard_s=300):
  """Returns once the run has stopped itself at the pause its VAE_TEST_PAUSE_* variable names
  (tests/known_data/sitecustomize.py): a state that lasts until the test continues or ends it, so no signal can
  arrive too late. Fails if the run ended instead; the guard only ends a test that would otherwise hang."""
  import time
  deadline = time.monotonic() + guard_s
  while True:
    pid, status = os.waitpid(process.pid, os.WUNTRACED | os.WNOHANG)
    if pid:
      assert os.WIFSTOPPED(status), f'the run ended (wait status {status}) before pausing mid-run'
      return
    assert time.monotonic() < deadline, 'timed out waiting for the run to pause'
    time.sleep(0.05)


class Started:
  """A subprocess started now and waited for later, so that two slow ones (mostly one core each: start-up,
  tracing, compiling) share the machine's cores. `finished()` waits (the timeout only guards against a hang) and
  returns the CompletedProcess, with text output; `stop()` ends it and any process it started."""

  def __init__(self, command, timeout=600, **kwargs):
    self.command, self.timeout = command, timeout
    self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True, **kwargs)
    self.completed = None

  def finished(self):
    if self.completed is None:
      try:
        stdout, stderr = self.process.communicate(timeout=self.timeout)
      finally:
        self.stop()
      self.completed = subprocess.CompletedProcess(self.command, self.process.returncode, stdout, stderr)
    return self.completed

  def stop(self):
    if self.process.poll() is None:
      os.killpg(self.process.pid, signal.SIGKILL)
      self.process.communicate()


def synthetic_digits(count, seed):
  """uint8 images [count, 28, 28] and labels [count]: class prototypes plus noise, in the MNIST value range.

  `seed`: anything numpy's default_rng takes, e.g. a tuple of integers.
  """
  rng = np.random.default_rng(seed)
  prototypes = (np.random.default_rng(1234).random((preprocess.NUM_CLASSES, 28, 28)) > 0.8).astype(np.float64)
  labels = (np.arange(count) % preprocess.NUM_CLASSES).astype(np.uint8)
  rng.shuffle(labels)
  images = prototypes[labels] * rng.uniform(0.6, 1.0, (count, 28, 28))
  images += rng.uniform(0.0, 0.15, (count, 28, 28))
  return np.clip(np.round(images * 255), 0, 255).astype(np.uint8), labels


def write_mnist(directory, num_train=256, num_test=64, gz=True, seed=0, dataset='mnist', known=True):
  """Writes the four IDX files into `directory`, known as `dataset`'s unless `known` is False; returns {name: path}."""
  os.makedirs(directory, exist_ok=True)
  train = synthetic_digits(num_train, (seed, SPLIT_STREAMS['train'], DATASET_STREAMS[dataset]))
  test = synthetic_digits(num_test, (seed, SPLIT_STREAMS['test'], DATASET_STREAMS[dataset]))
  arrays = dict(zip(idx.FILE_NAMES, (train[0], train[1], test[0], test[1])))
  paths = {}
  for name, array in arrays.items():
    path = os.path.join(directory, name + ('.gz' if gz else ''))
    idx.write_idx(path, array)
    paths[name] = path
  if known:
    make_known(dataset, paths)
  return paths


@pytest.fixture(params=['0', '1'], ids=['onednn-off', 'onednn-on'])
def onednn(request, monkeypatch):
  """Runs a subprocess test under both CPU paths: TF_ENABLE_ONEDNN_OPTS=1 turns oneDNN on even on an AVX2 CPU
  (it is on by default on CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX), =0 turns it off anywhere."""
  monkeypatch.setenv('TF_ENABLE_ONEDNN_OPTS', request.param)
  return request.param


@pytest.fixture
def mnist_dir(tmp_path):
  directory = str(tmp_path / 'mnist')
  write_mnist(directory)
  return directory


# A tiny run: seconds to train, yet every output of a real one (metrics, frames, gifs, checkpoints, export).
TINY_RUN = dict(epochs=3, updates_per_epoch=4, batch_size=16, eval_k=3, learning_rate=1e-3)
# The tiny runs several test files read, by name: the settings they differ in from TINY_RUN.
SHARED_RUNS = {'reference': {}, 'seed1': {'seed': 1}, 'latent5': {'latent_dim': 5}}


def tiny_config(data_dir, output_dir, **overrides):
  from vae.run.config import Config
  return Config(**{**TINY_RUN, 'data_dir': data_dir, 'output_dir': str(output_dir), **overrides})


@contextlib.contextmanager
def _file_lock(path):
  """An exclusive flock on `path` while the block runs: one pytest-xdist worker at a time."""
  import fcntl
  with open(path, 'w') as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope='session')
def shared_run(tmp_path_factory):
  """shared_run(name) -> (data_dir, output_dir) of the SHARED_RUNS run `name`, trained on first use and then
  shared by every test of the session, on every pytest-xdist worker (the first worker to need it trains it, under
  a lock, in the session's common directory): read it, never change it (copy_run gives a copy to change)."""
  base = tmp_path_factory.getbasetemp()
  root = (base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base) / 'shared-runs'
  root.mkdir(exist_ok=True)
  data_dir = root / 'mnist'
  with _file_lock(root / '.mnist.lock'):
    if not (root / '.mnist.written').exists():
      write_mnist(str(data_dir))
      (root / '.mnist.written').touch()
    else:  # written by another worker: the same contents, made known to this process too
      make_known('mnist', {name: str(data_dir / (name + '.gz')) for name in idx.FILE_NAMES})

  def get(name):
    with _file_lock(root / f'.{name}.lock'):
      if not (root / name / 'evaluation.json').exists():
        shutil.rmtree(root / name, ignore_errors=True)  # what a worker that died while training left
        train_run(tiny_config(str(data_dir), root / name, **SHARED_RUNS[name]), log=lambda *args: None)
    return str(data_dir), str(root / name)
  return get


def snapshot(directory, times=False):
  """{relative path: bytes} of every file under `directory`; with `times`, {relative path: (bytes, mtime ns)}."""
  files = {}
  for root, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        data = f.read()
      files[os.path.relpath(path, directory)] = (data, os.stat(path).st_mtime_ns) if times else data
  return files


def copy_run(run_dir, destination):
  """A copy of a run directory that a test may change; returns its path as a string."""
  shutil.copytree(run_dir, destination)
  return str(destination)
