"""Evaluation: the test-set ELBO and the importance-weighted estimate of log p(x).

The per-epoch test ELBO is averaged over all test images with one fixed noise draw per image (`eval_noise`), in
the closed-form-KL form of model.py (`VAE.terms`).

The ELBO is a lower bound on log p(x). Burda et al. [1] tighten it with k importance samples from q(z|x), using
the Monte Carlo form of model.py, log w = log p(x|z) + log p(z) - log q(z|x) (`vae.model.log_weight`):

    z_1..z_k ~ q(z|x),   L_k(x) = log (1/k) sum_i w_i = logsumexp_i(log w_i) - log k

(`vae.model.importance_weighted_bound`, the same function --objective=iwae trains). L_1 = log w_1 is a one-sample
estimate whose expectation is the ELBO (tests/test_model.py checks this against the closed form); E[L_k] rises
with k and tends to log p(x), so L_k with large k (papers use k = 5000) is the standard estimate of the test
log-likelihood. Here only the bookkeeping is added: the k log weights of an image are computed a chunk of samples
at a time, so that the decoder never holds more than a bounded number of rows, and then handed to the bound
all together.

Posterior collapse: a latent dimension the encoder ignores has q(z_u|x) = p(z_u) for every x, so its posterior
mean does not move with x and it carries no rate. Burda et al. [1] (section 5.2) count the *active units*

    A_u = Cov_x( E_q(z|x)[z_u] ) > 0.01,

the dimensions whose posterior mean varies across the test set (`active_units`); `mean_rate_per_dimension`
averages model.py's `rate_per_dimension` over the test set. The two answer different questions: a dimension
whose posterior is the prior for every x has rate 0 and is inactive, but an inactive one can still cost rate (a
constant non-zero mean, or sigma != 1, is paid for in every image while telling nothing about it).

References:
  [1] Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
      https://arxiv.org/abs/1509.00519
"""

import numpy as np
import tensorflow as tf

from vae.run import keys
from vae.model import importance_weighted_bound, rate_per_dimension


def eval_noise(seed, num_examples, latent_dim):
  """The fixed evaluation noise eps [N, latent_dim], drawn once per run.

  The per-epoch test ELBO is a one-sample estimate with this noise, so its changes between epochs come from the
  model, not from the noise. (The posterior mean alone would give a deterministic number, but not the ELBO.)
  """
  return tf.random.stateless_normal([num_examples, latent_dim], seed=keys.key(seed, keys.EVAL_NOISE))


def make_evaluator(model, batch_size=2000):
  """Returns `test_terms(images, eps) -> dict` of numpy arrays, one row per image: the [N] arrays `elbo`, `rate`,
  `distortion` and the [N, latent_dim] arrays `mean`, `log_var` (`VAE.terms`) and `rate_per_dimension`.

  The test set goes through in large batches: few calls, each with enough work to use every core.
  """

  @tf.function(reduce_retracing=True, autograph=False)  # straight-line: nothing to convert
  def batch_terms(x, eps):
    terms = model.terms(x, eps, training=False)
    return dict(terms, rate_per_dimension=rate_per_dimension(terms['mean'], terms['log_var']))

  def test_terms(images, eps):
    parts = []
    for start in range(0, len(images), batch_size):
      stop = start + batch_size
      parts.append(batch_terms(tf.convert_to_tensor(images[start:stop]), eps[start:stop]))
    return {key: np.concatenate([p[key].numpy() for p in parts]) for key in parts[0]}

  return test_terms


ACTIVE_UNIT_THRESHOLD = 0.01


def active_units(means, threshold=ACTIVE_UNIT_THRESHOLD):
  """The number of latent dimensions whose posterior mean varies across the images: means [N, d] -> int."""
  return int(np.sum(np.var(np.asarray(means, dtype=np.float64), axis=0) > threshold))


def mean_rate_per_dimension(rate_per_dimension):
  """Each latent dimension's KL, averaged over the images: [N, d] -> [d] (sums to the mean rate)."""
  return np.mean(np.asarray(rate_per_dimension, dtype=np.float64), axis=0)


def iwae_log_likelihood(model, images, k, seed, batch_size=100, max_rows=8000):
  """L_k for every image: a numpy array [N] of log p(x) estimates in nats.

  Args:
    model: a `vae.model.VAE`.
    images: float32 [N, D].
    k: importance samples per image.
    seed: noise seed.
    batch_size: images per chunk.
    max_rows: at most this many decoder rows (images x samples) at once; bounds memory.

  The estimate is a deterministic function of (model, images, k, seed, batch_size, max_rows): the chunking decides
  which noise each image gets, so other chunk sizes give another (equally valid) estimate.
  """
  latent_dim = model.latent_dim
  samples_per_chunk = max(1, min(k, max_rows // batch_size))

  @tf.function(reduce_retracing=True, autograph=False)  # straight-line: nothing to convert
  def chunk_log_weights(x, chunk_seed, num_samples):
    eps = tf.random.stateless_normal([num_samples, tf.shape(x)[0], latent_dim], seed=chunk_seed)
    return model.k_sample_terms(x, eps)['log_weight']                 # [samples, B]

  results = []
  for start in range(0, len(images), batch_size):
    x = tf.convert_to_tensor(images[start:start + batch_size])
    log_w = [chunk_log_weights(x, keys.key(seed, keys.IWAE_NOISE, start * k + first),
                               tf.constant(min(samples_per_chunk, k - first)))
             for first in range(0, k, samples_per_chunk)]
    results.append(importance_weighted_bound(tf.concat(log_w, axis=0)).numpy())   # [k, B] -> [B]
  return np.concatenate(results)
