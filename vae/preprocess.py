"""The model's inputs: the images of a data set, the pixel targets (grey or binarised), and the minibatch order.

An image of shape (H, W, C) is flattened to a vector x of D = H*W*C intensities in [0, 1], in row-major order
(row, column, channel); every network and loss in this package sees it in that form, x [B, D]. For MNIST
H, W, C = 28, 28, 1 and D = 784. The convolutional networks reshape x back to (H, W, C).

Pixel targets (`--binarize`). The likelihood p(x|z) is a product of Bernoulli distributions, one per pixel:

* 'none' (the original script's choice): the grey levels themselves are the Bernoulli targets (what that means
  for the numbers: vae/model.py, "Pixels").
* 'dynamic' (Burda et al. [1]): every time an image is used, each pixel is replaced by a fresh draw
  Bernoulli(intensity); the draw happens inside the training step (vae/run/engine.py).
* 'static': one fixed binarised copy of the training set, drawn with the run's --seed, made before training.

With either, the test set is binarised once, with Bernoulli(intensity) draws from a key that does not depend on
--seed (`binarized_test_set`): every run, whatever its seed, is scored on the same binary test set, so runs with
different seeds differ only by what they learnt (the draws are `binarized(images, 0, counter=1)`).
`vae-explore` shows a binarised model the same images.

Minibatch order: each pass over the data is a fresh permutation (sampling without replacement, like the
original `next_batch`), fixed by the seed.

References:
  [1] Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
      https://arxiv.org/abs/1509.00519
"""

import collections

import numpy as np

from vae.run import keys

MNIST_SHAPE = (28, 28, 1)
IMAGE_SIZE = 28                # MNIST's height and width
NUM_PIXELS = 28 * 28           # 784
DIGITS = tuple(str(d) for d in range(10))
NUM_CLASSES = len(DIGITS)

Dataset = collections.namedtuple('Dataset', ['train_images', 'train_labels', 'test_images', 'test_labels',
                                             'image_shape', 'class_names', 'name', 'fingerprint'],
                                 defaults=(MNIST_SHAPE, DIGITS, 'mnist', None))
Dataset.__doc__ = """A data set in memory: images float32 [N, D] in [0, 1], labels integer [N] indexing `class_names`,
`image_shape` (H, W, C) with H*W*C = D, the data set's `name`, and for images of one's own (vae/sources/folder.py)
the `fingerprint` of their files, which a resumed run must match."""


def num_values(image_shape):
  """D = H*W*C, the length of a flattened image."""
  height, width, channels = image_shape
  return height * width * channels


def binarized(images, seed, counter):
  """A fixed binarised copy of float images [N, D]: value = 1 with probability equal to its intensity."""
  rng = keys.numpy_generator(seed, keys.STATIC_BINARIZATION, counter)
  return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)


TEST_SET_SEED = 0  # the binary test set's key, the same for every run


def binarized_test_set(test_images):
  """The one binary test set of a data set: Bernoulli(intensity) draws that no flag changes."""
  return binarized(test_images, TEST_SET_SEED, counter=1)


def prepare_images(dataset, binarize, seed):
  """(training images, test images) as the model sees them under `binarize` ('none', 'dynamic', 'static').

  'dynamic' keeps the grey training images: the training step binarises each batch afresh.
  """
  if binarize == 'none':
    return dataset.train_images, dataset.test_images
  test = binarized_test_set(dataset.test_images)
  train = binarized(dataset.train_images, seed, counter=0) if binarize == 'static' else dataset.train_images
  return train, test


def train_batch_indices(num_examples, batch_size, seed, start_step=0):
  """An endless tf.data stream of shuffled index batches into the training set, each int32 [batch_size].

  The images themselves stay in one in-memory tensor and are gathered on-graph inside the training step, so that
  tf.data hands over B indices per step instead of B*D floats (vae/run/engine.py). `start_step`
  skips that many batches, so a resumed run continues the exact sequence of an uninterrupted one; skipping
  replays only the cheap index shuffle, which is far cheaper than saving the shuffle buffer in every checkpoint.
  """
  import tensorflow as tf  # here, so that the constants above can be imported without TensorFlow

  return (tf.data.Dataset.range(num_examples)
          .shuffle(num_examples, seed=seed, reshuffle_each_iteration=True)
          .repeat()
          .batch(batch_size, drop_remainder=True)
          .skip(start_step)
          .map(lambda idx: tf.cast(idx, tf.int32))
          .prefetch(tf.data.AUTOTUNE))
