"""The compiled training engine that run.py uses.

What it shares with `vae.train.train_loop`, the loop a first reading meets: the step itself, `vae.train.train_step`
with the loss vae/objectives.py builds for --objective and --train_k, the rate weighed by the same
`vae.train.rate_weight_at`, and the same Adam. tests/test_model.py runs six compiled steps against six plain
`train_step` calls given the same batches and noise. Without XLA (every pair with a conv network) they are the
same kernels in the same order and agree bit for bit. With XLA (fc/fc) XLA fuses and orders the arithmetic its
own way: they agree to float32 rounding (measured: 1.3e-7 relative in the losses and 5e-6 in any weight after
six steps; the test allows 1e-5 and 1e-4), and XLA's `stateless_normal` draws other noise for the same key, which
the test hands to the plain steps (see vae/run/keys.py).

What it does differently, all of it for speed or for exact resumption:

* the minibatch order comes from `vae.preprocess.train_batch_indices`, a tf.data shuffle of the row indices repeated
  pass after pass, whose batches run on across the end of a pass (no images are dropped), where `train_loop`
  shuffles each pass with numpy and drops its incomplete last batch;
* the noise of step t is a stateless draw keyed by (seed, t) (`train_noise`), where `train_loop` draws from a
  seeded generator; so a run resumed at step t draws what an uninterrupted run would, with no generator state to
  save;
* several steps run in one compiled call (`compile_steps`), with XLA for the fc networks, so the fixed cost of
  a call is paid once per call;
* the whole training set is one in-memory tensor (as uint8 codes where that is exact, `compact_images`), and each
  step gathers its minibatch on-graph from the row indices tf.data hands it, instead of copying D floats per
  image through tf.data;
* with --binarize=dynamic, each batch's pixels are drawn as Bernoulli(intensity) inside the step;
* the loss is vae/objectives.py's for --objective and --train_k, as `train_loop` can take it too.
"""

import numpy as np
import tensorflow as tf

from vae import objectives
from vae.run import keys
from vae.train import rate_weight_at, train_step


def train_noise(seed, step, batch_size, latent_dim, num_samples=None):
  """eps for training step `step`: N(0, I), a pure function of (seed, step) (vae/run/keys.py).

  [B, latent_dim], or [num_samples, B, latent_dim] when `num_samples` is given (the k samples of `--train_k`).
  A stateless draw rather than `train_loop`'s seeded generator: a run resumed at step t draws exactly what an
  uninterrupted run would, without saving a generator's state in the checkpoint. Inside the XLA-compiled steps
  the same key gives other numbers than outside them (vae/run/keys.py).
  """
  shape = [batch_size, latent_dim] if num_samples is None else [num_samples, batch_size, latent_dim]
  return tf.random.stateless_normal(shape, seed=keys.key(seed, keys.TRAIN_NOISE, step))


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


@tf.function(jit_compile=True, autograph=False)
def bernoulli_pixels(intensities, key):
  """Binary pixels [B, D], each 1 with probability equal to its intensity in [0, 1]: a pure function of `key`.

  u ~ Uniform[0, 1) per pixel and x = [u < intensity], so P(x = 1) is the intensity (to float32 precision). The
  uniforms come from the counter-based Threefry generator, compiled by XLA, on both paths of the engine: XLA's
  CPU code for it is much cheaper than for the default Philox (bench/bench.py compares the step with and without
  dynamic binarisation), and compiling this function on its own keeps the draws identical with and without XLA
  for the rest of the step.
  """
  uniforms = tf.random.stateless_uniform(tf.shape(intensities), seed=key, alg='threefry')    # [B, D]
  return tf.cast(uniforms < intensities, intensities.dtype)


def batch_gatherer(train_images, seed, dynamic_binarization=False):
  """Returns `batch(indices, step) -> x [B, D]`: the rows `indices` of the training set as the step sees them.

  The training set is held as one constant tensor (as uint8 codes where that is exact, see `compact_images`) and
  gathered on-graph; with `dynamic_binarization` the pixels of step `step` are drawn afresh as Bernoulli(intensity)
  with that step's key, so the same step always sees the same pixels and different steps see independent ones.
  """
  codes, scale = compact_images(train_images)
  stored = tf.constant(codes)

  def batch(indices, step):
    x = tf.gather(stored, indices)                               # [B, D]
    if scale is not None:
      x = tf.cast(x, tf.float32) * scale                         # exactly the float pixels
    if dynamic_binarization:
      x = bernoulli_pixels(x, keys.key(seed, keys.DYNAMIC_BINARIZATION, step))     # [B, D] binary
    return x

  return batch


def compile_steps(model, optimizer, train_images, config, jit_compile=False):
  """Returns `steps(indices, first_step) -> losses`: several training steps in one compiled call.

  Args:
    model: a `vae.model.VAE`.
    optimizer: a Keras optimizer (its variables are created here, before tracing).
    train_images: float32 [N, D] array holding the whole training set; it is kept in memory as a tensor
      (as uint8 codes where that is exact, see `compact_images`).
    config: the run's `vae.run.config.Config`. The step reads the settings that define it: batch_size, seed,
      binarize ('dynamic' draws each batch's pixels afresh), beta and kl_warmup_steps (`vae.train.rate_weight_at`),
      train_k and objective (the loss of `vae.objectives.training_loss`).
    jit_compile: compile the steps with XLA.

  The returned function takes `indices` int32 [S, B] (row s holds the rows of `train_images` that form the
  batch of step s) and `first_step`, the global number of the first of these S steps (the noise of a step is a
  function of its number), runs the S steps one after the other and returns their losses (the training
  objective, e.g. distortion + weight * rate), float32 [S].

  Why several steps per call: every call of a compiled function has a fixed cost (launching it, handing over
  the model's and the optimiser's variables, returning the loss), which is a noticeable share of a small model's
  step. Step s sees exactly the batch, noise and parameters it would see if called on its own, in either form of
  the loop:

  * with XLA, an on-graph loop (`tf.range` under autograph), which XLA compiles into one sequential program;
  * without XLA, a Python loop unrolled when the function is traced (once per distinct S), so that the graph
    holds S copies of the step in program order. An on-graph loop would be the shorter graph, but TensorFlow's
    executor runs the independent ops of a loop body concurrently, and the convolution gradients then differ in
    their last bits from run to run, so --seed would no longer repeat a run (docs/performance.md, "Why the steps
    are unrolled without XLA").
  """
  optimizer.build(model.trainable_variables)
  latent_dim, seed, batch_size = model.latent_dim, config.seed, config.batch_size
  batch = batch_gatherer(train_images, seed, dynamic_binarization=config.binarize == 'dynamic')
  loss = objectives.training_loss(config.objective, config.train_k)
  samples = objectives.samples_per_image(config.objective, config.train_k)

  # Straight-line Python, as is everything it calls (the model, the loss, the Keras networks): autograph has no
  # control flow to rewrite there, and converting it all would only lengthen every run's start. Keras's own
  # training step is not converted either, so a network that trains with Keras's fit trains here.
  @tf.autograph.experimental.do_not_convert
  def one_step(batch_indices, step):
    weight = rate_weight_at(step, config.beta, config.kl_warmup_steps)
    x = batch(batch_indices, step)                                            # [B, D]
    eps = train_noise(seed, step, batch_size, latent_dim, num_samples=samples)   # [B, d] or [k, B, d]
    return train_step(model, optimizer, x, eps, weight, loss)

  @tf.function(jit_compile=jit_compile)
  def compiled_steps(indices, first_step):
    if jit_compile:  # XLA makes the on-graph loop one sequential program, a much smaller one than S copies
      losses = tf.TensorArray(tf.float32, size=tf.shape(indices)[0])
      for s in tf.range(tf.shape(indices)[0]):
        losses = losses.write(s, one_step(indices[s], first_step + tf.cast(s, tf.int64)))
      return losses.stack()                                                   # [S]
    # Without XLA: a Python loop, unrolled at trace time into S copies of the step in program order.
    return tf.stack([one_step(indices[s], first_step + s) for s in range(indices.shape[0])])   # [S]

  def steps(indices, first_step):
    # Tensors, not Python numbers: a new Python step number would otherwise trace (and compile) again.
    return compiled_steps(tf.convert_to_tensor(indices, tf.int32), tf.convert_to_tensor(first_step, tf.int64))

  steps.compiled = compiled_steps  # the tf.function itself, for tests that count its traces
  return steps
