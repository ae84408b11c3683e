"""Infrastructure, skip on a first reading: `--dataset` -> the images of a run.

* `mnist` and `fashion_mnist`: the four IDX files in `data_dir`, downloaded and verified if missing (vae/idx.py).
* any other name: a TensorFlow Datasets image data set with integer labels, prepared into `data_dir`
  (vae/tfds_data.py), e.g. `kmnist`, `emnist/letters`, `cifar10`.
"""

import os

from vae import idx
from vae.errors import DataError

IDX_NAMES = tuple(idx.SOURCES)
TFDS_EXAMPLE = 'kmnist'


def default_data_dir(name):
  """Where a data set lives unless --data_dir says otherwise: ../mnist (the original's), ../fashion_mnist, or
  ../tensorflow_datasets for any TFDS data set (TFDS keeps each in a subdirectory of its own)."""
  return os.path.join('..', name) if name in IDX_NAMES else os.path.join('..', 'tensorflow_datasets')


def describe(name, data_dir):
  """(image_shape, class_names) of data set `name`, without loading its images; DataError with one line if
  `name` is neither an IDX data set nor a TFDS image data set with integer labels."""
  if name in IDX_NAMES:
    return (28, 28, 1), idx.SOURCES[name].class_names
  try:
    from vae import tfds_data
  except ImportError as e:
    raise DataError(f'--dataset={name} needs tensorflow-datasets, which is not installed ({e}); '
                    f'pip install -r requirements.txt') from None
  try:
    return tfds_data.describe(name, data_dir)
  except tfds_data.UnknownDataset:
    raise DataError(f'unknown --dataset {name!r}: the IDX data sets are {", ".join(IDX_NAMES)}, and any other '
                    f'name must be a TensorFlow Datasets image data set with integer labels, e.g. '
                    f'--dataset={TFDS_EXAMPLE}') from None


def load(name, data_dir):
  """The data set `name` as a `vae.inputs.Dataset`."""
  if name in IDX_NAMES:
    return idx.load(name, data_dir)
  from vae import tfds_data
  return tfds_data.load(name, data_dir)
