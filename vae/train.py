"""Training: one Adam step on the negative ELBO, and the compiled wrapper that runs several of them per call.

Read `train_step` first: it is the whole of the VAE's training algorithm (Kingma & Welling [1], Algorithm 1).
For a minibatch x [B, D] and one posterior noise draw eps ~ N(0, I) per image,

    loss = 1/B sum_b [ rate(x_b) + distortion(x_b, z_b) ],   z_b = mu(x_b) + sigma(x_b) * eps_b

is the minibatch estimate of -ELBO (see model.py); its gradient with respect to the encoder and decoder
weights is an unbiased estimate of the gradient of the -ELBO, thanks to the reparameterisation, and Adam [2]
takes one step along it. `--beta` and `--kl_warmup_steps` weigh the rate by w(t) instead of 1 (`rate_weight`):
the beta-VAE objective [3] and KL warm-up [4, 5]; with the defaults w = 1 and the loss is exactly -ELBO.

Everything after `train_step` is engineering around it, with the same maths:

* Randomness is *stateless*: the noise of step t is a pure function of (seed, t) (see vae/streams.py), so a run
  is reproducible from its seed, and a run resumed at step t draws exactly the noise an uninterrupted run would
  have drawn, with nothing but the step counter to save.
* `make_train_steps` compiles several steps into one call, gathering each batch from the in-memory training set
  on-graph (as uint8 codes where that is exact) and, for `--binarize=dynamic`, resampling binary pixels.

References:
  [1] D. P. Kingma, M. Welling. Auto-Encoding Variational Bayes. ICLR 2014. https://arxiv.org/abs/1312.6114
  [2] D. P. Kingma, J. Ba. Adam: A Method for Stochastic Optimization. ICLR 2015. https://arxiv.org/abs/1412.6980
  [3] I. Higgins et al. beta-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework.
      ICLR 2017.
  [4] S. R. Bowman et al. Generating Sentences from a Continuous Space. CoNLL 2016.
      https://arxiv.org/abs/1511.06349
  [5] C. K. Sonderby et al. Ladder Variational Autoencoders. NeurIPS 2016. https://arxiv.org/abs/1602.02282
"""

import numpy as np
import tensorflow as tf

from vae import streams


def train_step(model, optimizer, x, eps, rate_weight=1.0):
  """One Adam step on the batch mean of distortion + rate_weight * rate; returns that loss.

  x [B, D] targets in [0, 1], eps [B, latent_dim]. With rate_weight = 1 the loss is -ELBO; other weights give the
  beta-VAE objective and KL warm-up (see `rate_weight`).
  """
  with tf.GradientTape() as tape:
    terms = model.terms(x, eps, training=True)                                # rate, distortion: [B] each
    loss = tf.reduce_mean(terms['distortion'] + rate_weight * terms['rate'])  # -mean ELBO when rate_weight = 1
  grads = tape.gradient(loss, model.trainable_variables)
  optimizer.apply_gradients(zip(grads, model.trainable_variables))
  return loss


def rate_weight(step, beta=1.0, kl_warmup_steps=0):
  """The weight of the rate at training step `step` (0, 1, ...): beta (Higgins et al. [3]), reached linearly from
  0 over the first `kl_warmup_steps` steps (KL warm-up, Bowman et al. [4], Sonderby et al. [5]).

  A pure function of the step, so that a resumed run weighs every step as an uninterrupted one does.
  """
  if kl_warmup_steps <= 0:
    return tf.constant(beta, tf.float32)
  ramp = tf.minimum(1.0, tf.cast(step, tf.float32) / float(kl_warmup_steps))
  return beta * ramp


def train_noise(seed, step, batch_size, latent_dim):
  """eps [B, latent_dim] for training step `step`: N(0, I), a pure function of (seed, step)."""
  return tf.random.stateless_normal([batch_size, latent_dim], seed=streams.key(seed, streams.TRAIN_NOISE, step))


def compact_images(images):
  """Float images [N, D] -> (uint8 codes, scale) with codes * scale == images exactly, if such codes exist.

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
                     dynamic_binarization=False, beta=1.0, kl_warmup_steps=0):
  """Returns `train_steps(indices, first_step) -> losses`: several `train_step`s in one compiled call.

  Args:
    model: a `vae.model.VAE`.
    optimizer: a Keras optimizer (its variables are created here, before tracing).
    train_images: float32 [N, D] array holding the whole training set; it is kept in memory as a tensor
      (as uint8 codes where that is exact, see `compact_images`).
    batch_size: B.
    seed: the run's integer seed.
    jit_compile: compile the steps with XLA.
    dynamic_binarization: resample each batch's pixels as Bernoulli(intensity) at every step.
    beta, kl_warmup_steps: the rate's weight in the objective, see `rate_weight`.

  The returned function takes `indices` int32 [S, B] (row s holds the rows of `train_images` that form the
  batch of step s) and `first_step`, the global number of the first of these S steps (the noise of a step is a
  function of its number), runs the S steps one after the other and returns their losses (the objective:
  distortion + weight * rate), float32 [S].

  Why several steps per call: every call of a compiled function has a fixed cost (launching it, handing over
  the two dozen variables, returning the loss), which is a noticeable share of a small model's step. Step s
  sees exactly the batch, noise and parameters it would see if called on its own, in either form of the loop:

  * with XLA, an on-graph loop (`tf.range` under autograph), which XLA compiles into one sequential program;
  * without XLA, a Python loop unrolled when the function is traced (once per distinct S), so that the graph
    holds S copies of the step in program order. An on-graph loop would be the shorter graph, but TensorFlow's
    executor runs the independent ops of a loop body concurrently, and the convolution gradients then differ in
    their last bits from run to run, so `--seed` would no longer repeat a run (README, "Reproducibility").
  """
  optimizer.build(model.trainable_variables)
  latent_dim = model.latent_dim
  codes, scale = compact_images(train_images)
  stored = tf.constant(codes)

  def batch(indices, step):
    x = tf.gather(stored, indices)                               # [B, D]
    if scale is not None:
      x = tf.cast(x, tf.float32) * scale                         # exactly the float pixels
    if dynamic_binarization:
      key = streams.key(seed, streams.DYNAMIC_BINARIZATION, step)
      x = tf.cast(tf.random.stateless_uniform(tf.shape(x), seed=key) < x, tf.float32)   # [B, D] binary
    return x

  def one_step(batch_indices, step):
    eps = train_noise(seed, step, batch_size, latent_dim)                     # [B, latent_dim]
    weight = rate_weight(step, beta, kl_warmup_steps)
    return train_step(model, optimizer, batch(batch_indices, step), eps, weight)

  @tf.function(jit_compile=jit_compile)
  def compiled_steps(indices, first_step):
    if jit_compile:  # XLA makes the on-graph loop one sequential program, compiled far faster than S copies
      losses = tf.TensorArray(tf.float32, size=tf.shape(indices)[0])
      for s in tf.range(tf.shape(indices)[0]):
        losses = losses.write(s, one_step(indices[s], first_step + tf.cast(s, tf.int64)))
      return losses.stack()                                                   # [S]
    # Without XLA: a Python loop, unrolled at trace time into S copies of the step in program order.
    return tf.stack([one_step(indices[s], first_step + s) for s in range(indices.shape[0])])   # [S]

  def train_steps(indices, first_step):
    # Tensors, not Python numbers: a new Python step number would otherwise trace (and compile) again.
    return compiled_steps(tf.convert_to_tensor(indices, tf.int32), tf.convert_to_tensor(first_step, tf.int64))

  train_steps.compiled = compiled_steps  # the tf.function itself, for tests that count its traces
  return train_steps
