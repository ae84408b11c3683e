"""Shared fixtures: tiny synthetic MNIST-format data sets, written with the package's own IDX writer.

No test reads ../shared or the internet. The synthetic digits are learnable (each class is a fixed random
stroke pattern plus pixel noise), so a few training steps visibly lower the loss.
"""

import os
import sys

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from vae import idx, inputs  # noqa: E402


def synthetic_digits(count, seed):
  """uint8 images [count, 28, 28] and labels [count]: class prototypes plus noise, in the MNIST value range."""
  rng = np.random.default_rng(seed)
  prototypes = (np.random.default_rng(1234).random((inputs.NUM_CLASSES, 28, 28)) > 0.8).astype(np.float64)
  labels = (np.arange(count) % inputs.NUM_CLASSES).astype(np.uint8)
  rng.shuffle(labels)
  images = prototypes[labels] * rng.uniform(0.6, 1.0, (count, 28, 28))
  images += rng.uniform(0.0, 0.15, (count, 28, 28))
  return np.clip(np.round(images * 255), 0, 255).astype(np.uint8), labels


def write_mnist(directory, num_train=256, num_test=64, gz=True, seed=0):
  """Writes the four IDX files into `directory`; returns {name: path}."""
  os.makedirs(directory, exist_ok=True)
  train = synthetic_digits(num_train, seed)
  test = synthetic_digits(num_test, seed + 1)
  arrays = dict(zip(idx.FILE_NAMES, (train[0], train[1], test[0], test[1])))
  paths = {}
  for name, array in arrays.items():
    path = os.path.join(directory, name + ('.gz' if gz else ''))
    idx.write_idx(path, array)
    paths[name] = path
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
