"""Image data sets from TensorFlow Datasets (TFDS), e.g. kmnist, cifar10.

Any TFDS data set with an `image` feature of fully defined shape (H, W, C) and an integer `label` (a ClassLabel)
works: its `train` and `test` splits become a `vae.preprocess.Dataset`, pixels scaled to [0, 1] and flattened, labels
named by the ClassLabel's names. tensorflow-datasets is imported only here, and only when such a data set is
chosen, so that an MNIST run starts as fast as ever.

A data set is read from `data_dir` where TFDS has prepared it. If it is not there, it is downloaded and prepared
into `data_dir` when the network allows. TFDS's downloader retries with back-off and has no timeout, so without a
network it would hang for minutes; a quick connection check comes first, and failing it (or any failure of the
download) ends with one line saying how to prepare the data set on a connected machine. Whatever the failed
attempt created in `data_dir` is removed, so the next run does not mistake it for data.

TFDS reports on its own through Python (absl) logging and progress bars: a missing `dataset_info.json`, download
retries, what it prepares. None of that is for the user of a run, whose only word from here is the one-line error
when something fails, so every call into TFDS runs with Python logging switched off (`silenced`) and TFDS's
progress bars disabled.
"""

import contextlib
import functools
import logging
import os
import shutil
import socket
import threading

import numpy as np

from vae.commands.errors import DataError
from vae.preprocess import Dataset

# A host that a TFDS download needs (the prepared copies of many data sets live there); checked before TFDS is
# allowed to try, with a short timeout.
PROBE_HOST = ('storage.googleapis.com', 443)
PROBE_TIMEOUT_S = 5.0
READ_BATCH = 10000  # images per batch when reading a split (batch_size=-1 aborts under tfds.testing.mock_data)


def _tfds():
  import tensorflow_datasets as tfds  # noqa: F401  (imported lazily: see the module docstring)
  tfds.disable_progress_bar()
  return tfds


def silenced(function):
  """Runs `function` with every Python logging record (absl's included) dropped, and logging as it was after."""

  @functools.wraps(function)
  def wrapper(*args, **kwargs):
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
      return function(*args, **kwargs)
    finally:
      logging.disable(previous)

  return wrapper


class UnknownDataset(DataError):
  """TFDS knows no data set (or config) of this name."""


@silenced
def builder(name, data_dir):
  """The TFDS builder of `name` in `data_dir`; UnknownDataset for a name TFDS does not know."""
  tfds = _tfds()
  try:
    return tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # DatasetNotFoundError, a bad config name, a bad version: all mean "no such data set"
    raise UnknownDataset(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


@silenced
def describe(name, data_dir, data_builder=None):
  """(image_shape (H, W, C), class_names) of the TFDS data set `name`, read from its metadata, without data.

  Raises DataError if the data set has no fully defined image feature or no integer label.
  """
  info = (data_builder or builder(name, data_dir)).info
  features = info.features
  names = sorted(features.keys()) if hasattr(features, 'keys') else []
  tfds = _tfds()
  image = features['image'] if 'image' in names else None
  label = features['label'] if 'label' in names else None
  if not isinstance(image, tfds.features.Image) or not isinstance(label, tfds.features.ClassLabel):
    raise DataError(f'{name} is not an image classification data set: it needs an "image" feature and an integer '
                    f'"label" (it has {", ".join(names) or "no named features"})')
  shape = tuple(image.shape)
  if len(shape) != 3 or any(d is None for d in shape):
    raise DataError(f'{name} has images of varying shape {shape}; only data sets with one fixed image shape '
                    f'can train this model')
  return tuple(int(d) for d in shape), tuple(label.names)


@silenced
def load(name, data_dir):
  """The TFDS data set `name` as a `Dataset`, prepared into `data_dir` first if it is not there yet."""
  data_builder = builder(name, data_dir)
  image_shape, class_names = describe(name, data_dir, data_builder)
  if not data_builder.is_prepared():
    _prepare(name, data_builder, data_dir)
  train_images, train_labels = _read_split(data_builder, 'train', image_shape)
  test_images, test_labels = _read_split(data_builder, 'test', image_shape)
  return Dataset(train_images, train_labels, test_images, test_labels, image_shape, class_names, name)


def _read_split(data_builder, split, image_shape):
  """(images float32 [N, H*W*C] in [0, 1], labels int64 [N]) of one split, read in large batches."""
  tfds = _tfds()
  splits = data_builder.info.splits
  if splits and split not in splits:
    raise DataError(f'{data_builder.name} has no {split!r} split (it has {", ".join(sorted(splits))}); this '
                    f'model needs a train and a test split')
  images, labels = [], []
  batches = data_builder.as_dataset(split=split, batch_size=READ_BATCH, shuffle_files=False)
  for batch in tfds.as_numpy(batches):
    images.append(batch['image'].reshape(len(batch['image']), -1))
    labels.append(batch['label'].astype(np.int64))
  if not images:
    raise DataError(f'the {split} split of {data_builder.name} is empty')
  pixels = np.concatenate(images).astype(np.float32)
  pixels *= 1.0 / 255.0
  if pixels.shape[1] != int(np.prod(image_shape)):
    raise DataError(f'{data_builder.name} images hold {pixels.shape[1]} values, not the {image_shape} its '
                    f'metadata promises')
  return pixels, np.concatenate(labels)


def probe_problem(address, timeout):
  """Why (host, port) cannot be connected to within `timeout` seconds, or None if it can.

  The name lookup is part of the wait: a resolver that never answers (a network that drops packets) is bounded
  like a connection that never completes. The attempt runs in a daemon thread, which is left behind if it
  outlasts the timeout.
  """
  outcome = []

  def attempt():
    try:
      socket.create_connection(address, timeout=timeout).close()
      outcome.append(None)
    except OSError as e:
      outcome.append(e.strerror or str(e))

  thread = threading.Thread(target=attempt, daemon=True)
  thread.start()
  thread.join(timeout)
  return outcome[0] if outcome else f'no answer within {timeout:g} s'


def _prepare(name, data_builder, data_dir):
  """Downloads and prepares `name` into `data_dir`, or fails fast with one line; leaves no partial directory."""
  how = (f'{name} is not prepared in {os.path.abspath(data_dir)} and could not be downloaded ({{}}). On a machine '
         f'with a network run `tfds build {name} --data_dir=DIR` (pip install tensorflow-datasets), then copy DIR '
         f'here, or pass --data_dir pointing at it')
  unreachable = probe_problem(PROBE_HOST, PROBE_TIMEOUT_S)
  if unreachable:
    raise DataError(how.format(f'no network: {PROBE_HOST[0]} unreachable, {unreachable}')) from None
  existed = {path: os.path.exists(path) for path in (data_dir, os.path.join(data_dir, name.split('/')[0]),
                                                       os.path.join(data_dir, 'downloads'))}
  try:
    data_builder.download_and_prepare()
  except Exception as e:  # the download or the preparation failed: nothing usable was made
    for path, was_there in sorted(existed.items(), reverse=True):  # deepest first
      if not was_there:
        with contextlib.suppress(OSError):
          shutil.rmtree(path)
    raise DataError(how.format(f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'[:200])) from None
