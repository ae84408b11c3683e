"""The training objectives: the one place that names them and builds the loss each one trains.

An objective is a name (`--objective`) and a number of posterior samples per training image (`--train_k`). For a
minibatch x [B, D] the loss is the batch mean of a per-image estimate of -ELBO (or of -L_k), built from model.py's
terms. With lambda the rate's weight (1 by default; `--beta` and `--kl_warmup_steps` change it, vae/train.py):

    objective  train_k  loss per image                                       KL term           Burda et al. [1]
    elbo       1        distortion(x, z) + lambda * rate(x)                  closed form       -
    elbo       k > 1    1/k sum_i distortion(x, z_i) + lambda * rate(x)      closed form       "VAE, k"
    iwae       k >= 1   -L_k = -(logsumexp_i log w_i - log k)                sampled (log w)   "IWAE, k"

with z_i = mu(x) + sigma(x) * eps_i and log w_i = -distortion(x, z_i) + log p(z_i) - log q(z_i|x) (model.py).

Two objectives with the same expectation are still two estimators. For k = 1, -L_1 = -log w_1 is an unbiased
estimate of -ELBO, like the first row, but it samples the KL as log q(z|x) - log p(z) at z instead of using its
closed form, so its gradient is noisier; `--objective=iwae --train_k=1` therefore trains the ELBO with the
sampled-KL estimator, not the same estimator as the default. For k > 1, Burda et al.'s k-sample VAE maximises
1/k sum_i log w_i, which samples the KL k times; the `elbo` row averages only the distortion over the k samples
and keeps the closed-form KL: the same objective in expectation, with less variance in the KL's share of the
gradient.

Nothing here imports TensorFlow at module level: config.py takes the names from `OBJECTIVES` to check
`--objective` before run.py starts TensorFlow. The loss functions import it when they first run.

References:
  [1] Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
      https://arxiv.org/abs/1509.00519
"""

# --objective's values, each with the one line --help gives it.
OBJECTIVES = {
    'elbo': 'the ELBO with its closed-form KL (the VAE); with --train_k > 1 the distortion averaged over k samples',
    'iwae': 'the importance-weighted bound L_k of --train_k samples, its KL sampled through log w',
}


def negative_elbo(model, x, eps, rate_weight=1.0):
  """The batch mean of distortion + rate_weight * rate: -ELBO when rate_weight = 1. x [B, D], eps [B, latent_dim].

  The first row of the table above: one posterior sample per image and the closed-form KL.
  """
  import tensorflow as tf

  terms = model.terms(x, eps, training=True)                                # rate, distortion: [B] each
  return tf.reduce_mean(terms['distortion'] + rate_weight * terms['rate'])  # -mean ELBO when rate_weight = 1


def negative_k_sample_elbo(model, x, eps, rate_weight=1.0):
  """The batch mean of 1/k sum_i distortion(x, z_i) + rate_weight * rate(x). x [B, D], eps [k, B, latent_dim]."""
  import tensorflow as tf

  terms = model.k_sample_terms(x, eps, training=True)            # rate [B], distortion [k, B]
  return tf.reduce_mean(tf.reduce_mean(terms['distortion'], axis=0) + rate_weight * terms['rate'])


def negative_iwae_bound(model, x, eps, rate_weight=1.0):
  """The batch mean of -L_k(x). x [B, D], eps [k, B, latent_dim].

  L_k has no rate term of its own to weigh: `rate_weight` must be 1 (config.py refuses --beta and a warm-up with
  --objective=iwae), and is taken only so that every loss here has the same signature.
  """
  import tensorflow as tf

  from vae.model import importance_weighted_bound

  del rate_weight
  terms = model.k_sample_terms(x, eps, training=True)            # log_weight [k, B]
  return -tf.reduce_mean(importance_weighted_bound(terms['log_weight']))


def objective_problem(objective):
  """Why `objective` is not one of ours, as one line, or None."""
  if objective in OBJECTIVES:
    return None
  return f'--objective must be one of {", ".join(OBJECTIVES)}, got {objective!r}'


def samples_per_image(objective, train_k):
  """The posterior samples each training image gets: None for the one-sample ELBO, whose noise is [B, latent_dim],
  else train_k (noise [train_k, B, latent_dim])."""
  return None if (objective, train_k) == ('elbo', 1) else train_k


def training_loss(objective, train_k):
  """The loss of (objective, train_k): a function (model, x, eps, rate_weight) -> scalar, from the table above.

  Its eps is [B, latent_dim] or [train_k, B, latent_dim], as `samples_per_image` says. Raises ValueError for an
  objective that is not in `OBJECTIVES`, or a train_k below 1.
  """
  problem = objective_problem(objective)
  if problem:
    raise ValueError(problem)
  if int(train_k) < 1:
    raise ValueError(f'--train_k must be a positive integer, got {train_k}')
  if objective == 'iwae':
    return negative_iwae_bound
  return negative_elbo if train_k == 1 else negative_k_sample_elbo
