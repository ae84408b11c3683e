"""Training and evaluation steps for the VAE.

One training step draws a batch x [B, 784], one posterior noise sample eps ~ N(0, I) per image, and takes an
Adam step on the batch mean of -ELBO(x) = rate + distortion (see model.py for the terms).

Randomness is *stateless*: the noise of step t is a pure function of (seed, t). A run is therefore reproducible
from its seed, and a run resumed at step t draws exactly the noise an uninterrupted run would have drawn, with
nothing but the step counter to save.

Binarisation (`binarize`): 'none' trains on grey levels, as the original did; 'dynamic' replaces every pixel by
a fresh Bernoulli(intensity) draw each time an image is used (Burda et al.), again a function of (seed, step);
'static' trains on one fixed binarised copy, made before training (see `binarized`).
"""

import numpy as np
import tensorflow as tf

BINARIZE_MODES = ('none', 'dynamic', 'static')

# Tags that separate the random streams drawn from one --seed (see also vae/evaluate.py).
_TRAIN_NOISE = 1
_DYNAMIC_BINARIZATION = 5
_STATIC_BINARIZATION = 6


def train_noise(seed, step, batch_size, latent_dim):
  """eps [B, latent_dim] for training step `step`: N(0, I), a pure function of (seed, step)."""
  seed_pair = tf.stack([tf.cast(seed, tf.int64) * 4 + _TRAIN_NOISE, tf.cast(step, tf.int64)])
  return tf.random.stateless_normal([batch_size, latent_dim], seed=seed_pair)


def binarized(images, seed, tag=0):
  """A fixed binarised copy of float images [N, 784]: pixel = 1 with probability equal to its intensity."""
  rng = np.random.default_rng([seed, _STATIC_BINARIZATION, tag])
  return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)


def compact_images(images):
  """Float images [N, 784] -> (uint8 codes, scale) with codes * scale == images exactly, if such codes exist.

  MNIST pixels are k/255 (or 0/1 once binarised), so the training set fits in a quarter of the memory as uint8
  and is turned back into the very same float32 values inside the step, after the gather, for one batch at a
  time. Anything else stays float32 (scale None).
  """
  images = np.asarray(images, dtype=np.float32)
  for scale in (np.float32(1.0 / 255.0), np.float32(1.0)):
    codes = np.empty(images.shape, np.uint8)
    for start in range(0, len(images), 4096):  # in chunks, to keep the float temporaries small
      chunk = images[start:start + 4096]
      codes[start:start + 4096] = np.clip(np.round(chunk / scale), 0, 255)
      if not np.array_equal(codes[start:start + 4096].astype(np.float32) * scale, chunk):
        break
    else:
      return codes, scale
  return images, None


def make_train_steps(model, optimizer, train_images, *, batch_size, seed, jit_compile=False,
                     dynamic_binarization=False):
  """Returns `train_steps(indices, first_step) -> losses`: several Adam steps on -ELBO in one compiled call.

  Args:
    model: a `vae.model.VAE`.
    optimizer: a Keras optimizer (its variables are created here, before tracing).
    train_images: float32 [N, 784] array holding the whole training set; it is kept in memory as a tensor
      (as uint8 codes where that is exact, see `compact_images`).
    batch_size: B.
    seed: the run's integer seed.
    jit_compile: compile the steps with XLA.
    dynamic_binarization: resample each batch's pixels as Bernoulli(intensity) at every step.

  The returned function takes `indices` int32 [S, B] (row s holds the rows of `train_images` that form the
  batch of step s) and `first_step`, the global number of the first of these S steps (the noise of a step is a
  function of its number), runs the S steps one after the other and returns their losses, float32 [S].

  Why several steps per call: every call of a compiled function has a fixed cost (launching it, handing over
  the two dozen variables, returning), which for the fc model on a 2-core CPU is a noticeable share of a 25 ms
  step. Looping on-graph pays it once per S steps; measured, 10 steps per call train the fc model about 15%
  faster than one. The maths is untouched: step s sees exactly the batch, noise and parameters it would see if
  called on its own.
  """
  variables = model.trainable_variables
  optimizer.build(variables)
  latent_dim = model.latent_dim
  codes, scale = compact_images(train_images)
  stored = tf.constant(codes)

  def one_step(indices, step):
    x = tf.gather(stored, indices)                               # [B, 784]
    if scale is not None:
      x = tf.cast(x, tf.float32) * scale                         # exactly the float pixels
    if dynamic_binarization:
      seed_pair = tf.stack([tf.cast(seed, tf.int64) * 4 + _DYNAMIC_BINARIZATION, step])
      x = tf.cast(tf.random.stateless_uniform(tf.shape(x), seed=seed_pair) < x, tf.float32)
    eps = train_noise(seed, step, batch_size, latent_dim)        # [B, latent_dim]
    with tf.GradientTape() as tape:
      terms = model.terms(x, eps, training=True)
      loss = tf.reduce_mean(terms['rate'] + terms['distortion'])  # = -mean ELBO
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss

  # A fixed signature: plain Python numbers are converted rather than traced (and compiled) once per value.
  @tf.function(jit_compile=jit_compile, input_signature=[tf.TensorSpec([None, batch_size], tf.int32),
                                                         tf.TensorSpec([], tf.int64)])
  def train_steps(indices, first_step):
    num_steps = tf.shape(indices)[0]
    losses = tf.TensorArray(tf.float32, size=num_steps)
    for s in tf.range(num_steps):                                 # an on-graph loop (autograph)
      losses = losses.write(s, one_step(indices[s], first_step + tf.cast(s, tf.int64)))
    return losses.stack()                                         # [S]

  return train_steps
