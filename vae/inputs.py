"""The model's inputs: image constants, the pixel targets (grey or binarised), and the minibatch order.

An MNIST image is 28x28 grey pixels, flattened to a vector x of 784 intensities in [0, 1]; every network and
loss in this package sees it in that form, x [B, 784].

Pixel targets (`--binarize`). The likelihood p(x|z) is a product of Bernoulli distributions, one per pixel:

* 'none' (the original script's choice): the grey levels themselves are the Bernoulli targets. The
  cross-entropy is then not a normalised likelihood, so the numbers are not comparable with published ones.
* 'dynamic' (Burda et al. [1]): every time an image is used, each pixel is replaced by a fresh draw
  Bernoulli(intensity); the draw happens inside the training step (vae/train.py). Test images are binarised
  once, so that every evaluation sees the same binary test set.
* 'static': one fixed binarised copy of the training and test sets, made before training.

Minibatch order: each pass over the data is a fresh permutation (sampling without replacement, like the
original `next_batch`), fixed by the seed.

References:
  [1] Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
      https://arxiv.org/abs/1509.00519
"""

import numpy as np

from vae import streams

IMAGE_SIZE = 28
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE  # 784
NUM_CLASSES = 10


def binarized(images, seed, counter):
  """A fixed binarised copy of float images [N, 784]: pixel = 1 with probability equal to its intensity."""
  rng = streams.numpy_generator(seed, streams.STATIC_BINARIZATION, counter)
  return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)


def prepare_images(dataset, binarize, seed):
  """(training images, test images) as the model sees them under `binarize` ('none', 'dynamic', 'static').

  'dynamic' keeps the grey training images: the training step binarises each batch afresh.
  """
  if binarize == 'none':
    return dataset.train_images, dataset.test_images
  test = binarized(dataset.test_images, seed, counter=1)
  train = binarized(dataset.train_images, seed, counter=0) if binarize == 'static' else dataset.train_images
  return train, test


def train_batches(num_examples, batch_size, seed, start_step=0):
  """An endless tf.data stream of shuffled index batches into the training set, each int32 [batch_size].

  The images themselves stay in one in-memory tensor and are gathered on-graph inside the training step: moving
  784 floats per image through tf.data would cost more than the fc model's whole forward pass. `start_step`
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
