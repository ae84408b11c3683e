"""Training and evaluation steps for the VAE.

One training step draws a batch x [B, 784], one posterior noise sample eps ~ N(0, I) per image, and takes an
Adam step on the batch mean of -ELBO(x) = rate + distortion (see model.py for the terms).

Randomness is *stateless*: the noise of step t is a pure function of (seed, t). A run is therefore reproducible
from its seed, and a run resumed at step t draws exactly the noise an uninterrupted run would have drawn, with
nothing but the step counter to save.

Evaluation uses a single fixed noise draw per test image, made once before training, so the per-epoch test ELBO
is a one-sample Monte Carlo estimate whose changes between epochs come from the model, not from the noise. (The
posterior mean alone would give a deterministic number, but not the ELBO.)
"""

import numpy as np
import tensorflow as tf

# Tags that separate the random streams drawn from one --seed.
_TRAIN_NOISE = 1
_EVAL_NOISE = 2


def train_noise(seed, step, batch_size, latent_dim):
  """eps [B, latent_dim] for training step `step`: N(0, I), a pure function of (seed, step)."""
  seed_pair = tf.stack([tf.cast(seed, tf.int64) * 4 + _TRAIN_NOISE, tf.cast(step, tf.int64)])
  return tf.random.stateless_normal([batch_size, latent_dim], seed=seed_pair)


def eval_noise(seed, num_examples, latent_dim):
  """The fixed evaluation noise eps [N, latent_dim], drawn once per run."""
  return tf.random.stateless_normal([num_examples, latent_dim], seed=[seed * 4 + _EVAL_NOISE, 0])


def make_train_step(model, optimizer, train_images, *, batch_size, seed, jit_compile=False):
  """Returns `step_fn(indices, step) -> loss`, one compiled Adam step on -ELBO.

  Args:
    model: a `vae.model.VAE`.
    optimizer: a Keras optimizer (its variables are created here, before tracing).
    train_images: float32 [N, 784] tensor holding the whole training set in memory.
    batch_size: B.
    seed: the run's integer seed.
    jit_compile: compile the step with XLA.

  The returned function takes `indices` int32 [B] (rows of `train_images`) and the global step number (for the
  noise), and returns the batch loss, a float32 scalar.
  """
  variables = model.trainable_variables
  optimizer.build(variables)
  latent_dim = model.latent_dim

  @tf.function(jit_compile=jit_compile, reduce_retracing=True)
  def step_fn(indices, step):
    x = tf.gather(train_images, indices)                         # [B, 784]
    eps = train_noise(seed, step, batch_size, latent_dim)        # [B, latent_dim]
    with tf.GradientTape() as tape:
      terms = model.terms(x, eps, training=True)
      loss = tf.reduce_mean(terms['rate'] + terms['distortion'])  # = -mean ELBO
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss

  return step_fn


def make_evaluator(model, batch_size=2000):
  """Returns `evaluate(images, eps) -> dict` with per-example numpy arrays `elbo`, `rate`, `distortion`, `mean`.

  Large batches keep evaluation of the 10,000 test images a small fraction of an epoch's time.
  """

  @tf.function(reduce_retracing=True)
  def batch_terms(x, eps):
    return model.terms(x, eps, training=False)

  def evaluate(images, eps):
    parts = []
    for start in range(0, len(images), batch_size):
      stop = start + batch_size
      parts.append(batch_terms(tf.convert_to_tensor(images[start:stop]), eps[start:stop]))
    return {key: np.concatenate([p[key].numpy() for p in parts]) for key in parts[0]}

  return evaluate
