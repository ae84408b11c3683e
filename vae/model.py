"""The variational autoencoder: prior, posterior, likelihood and the evidence lower bound (ELBO).

Generative model and approximate posterior (Kingma & Welling [1]):

    p(z)   = N(0, I)                                   standard normal prior, z in R^latent_dim
    p(x|z) = prod_i Bernoulli(x_i; sigmoid(f(z)_i))    decoder f returns D logits (or the continuous
                                                       Bernoulli, `--likelihood`: below)
    q(z|x) = N(mu(x), diag(sigma^2(x)))                encoder returns mu and log sigma^2

For every image the ELBO bounds the log-likelihood from below. Multiply and divide by q(z|x) inside the integral,
then use Jensen's inequality (log is concave, so log E[w] >= E[log w]):

    log p(x) = log E_q[ p(x|z) p(z) / q(z|x) ]
            >= E_q[ log p(x|z) + log p(z) - log q(z|x) ]                  (1) Monte Carlo form
             = E_q[ log p(x|z) ] - KL(q(z|x) || p(z))                     (2) closed-form KL
             = ELBO(x) = -(distortion + rate)

Both lines are the same number, and the code has both:

    (1) `log_weight`: log w = log p(x|z) + log p(z) - log q(z|x) for one sample z ~ q(z|x). Its mean over z is
        the ELBO; one sample is an unbiased, noisier estimate of it. Averaging the weights w themselves over k
        samples gives the tighter importance-weighted bound of Burda et al. [3] (`importance_weighted_bound`),
        which training with --objective=iwae maximises and vae/evaluate.py uses to estimate log p(x).
    (2) `terms`: the KL of two Gaussians has a closed form (`rate`), so only log p(x|z) needs a sample. This is
        what the default training loss (vae/objectives.py) and the per-epoch test ELBO use: the same
        expectation, usually with less variance (the sampled KL's noise is gone, though it can partly cancel the
        distortion's).

The gap is KL(q(z|x) || p(z|x)): the bound is tight exactly when q is the true posterior.

Following Alemi et al. [2] (and TensorFlow Probability's VAE example) the two terms are named

    rate       = KL(q(z|x) || p(z))  = 1/2 sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)   (analytic, nats)
    distortion = -E_q[log p(x|z)]   ~= -log p(x|z),  z = mu + sigma * eps,  eps ~ N(0, I)  (one sample)

The sample is *reparameterised* [1]: the randomness lives in eps, so z is a differentiable function of the encoder
outputs and the gradient of the ELBO flows through it. Training minimises the batch mean of -ELBO.

Pixels: the original script used the grey levels x_i in [0, 1] directly as Bernoulli targets, without binarising,
and so does this default. With grey targets -log p(x|z) is the binary cross-entropy, which is not a normalised
likelihood (its minimum is the pixel entropy, not 0), so the numbers are not comparable with published
log-likelihoods on binarised MNIST.

The continuous Bernoulli [4] (`--likelihood=continuous_bernoulli`) is the density on [0, 1] that the Bernoulli's
formula becomes once normalised: with lambda = sigmoid(l) for the decoder's logit l,

    p(x | lambda) = C(lambda) lambda^x (1 - lambda)^(1 - x),   x in [0, 1]
    C(lambda)     = 1 / int_0^1 lambda^x (1 - lambda)^(1 - x) dx = 2 artanh(1 - 2 lambda) / (1 - 2 lambda),
                    C(1/2) = 2.

Written with the logit, 1 - 2 lambda = -tanh(l / 2) and artanh(1 - 2 lambda) = -l / 2, so C = l / tanh(l / 2):
its log is log|l| - log|tanh(l / 2)|, which has no overflow for any l (log C ~ log|l| for large |l|), and near
l = 0 (lambda = 1/2, where both l and tanh(l / 2) vanish) the Taylor series log C = log 2 + l^2/12 - 7 l^4/1440
+ O(l^6) replaces it (`continuous_bernoulli_log_norm`). Its distortion is the Bernoulli's cross-entropy minus
sum_i log C(l_i), so training, the test ELBO and the importance-weighted estimate all use it through `distortion`.
Its ELBO and log-likelihood are those of a density over [0, 1]^D. Its mean is not lambda:

    E[x] = lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda)) = lambda / tanh(l / 2) - 1 / l,
    E[x] = 1/2 + l/12 - l^3/720 + O(l^5) near l = 0                               (`likelihood_mean`)

and the pictures of vae/viz.py show the mean of the likelihood the run trained, for either.

x is an image flattened to D values in [0, 1] (D = 784 for MNIST's 28x28 grey pixels; for colour images each of the
three channels of a pixel is a Bernoulli variable of its own, see vae/preprocess.py).

All loss terms are pure per-example functions of tensors; the `VAE` class only wires encoder and decoder to them.

References:
  [1] D. P. Kingma, M. Welling. Auto-Encoding Variational Bayes. ICLR 2014. https://arxiv.org/abs/1312.6114
  [2] A. Alemi et al. Fixing a Broken ELBO. ICML 2018. https://arxiv.org/abs/1711.00464
  [3] Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
      https://arxiv.org/abs/1509.00519
  [4] G. Loaiza-Ganem, J. P. Cunningham. The continuous Bernoulli: fixing a pervasive error in variational
      autoencoders. NeurIPS 2019. https://arxiv.org/abs/1907.06845
"""

import math

import tensorflow as tf

LOG_2PI = math.log(2.0 * math.pi)
LIKELIHOODS = ('bernoulli', 'continuous_bernoulli')
# Below this |logit| the Taylor series replace the closed forms, whose two factors both vanish at l = 0; their
# first omitted terms are below 1e-9 there, far under float32's resolution.
TAYLOR_BELOW = 0.1


def reparameterize(mean, log_var, eps):
  """z = mean + sigma * eps with sigma = exp(log_var / 2). All [B, latent_dim]."""
  return mean + tf.exp(0.5 * log_var) * eps


def rate_per_dimension(mean, log_var):
  """Each latent dimension's share of KL(N(mean, diag(exp(log_var))) || N(0, I)), in nats.

  KL_j = 1/2 (mean_j^2 + exp(log_var_j) - log_var_j - 1)

  A dimension whose posterior is the prior for every x (mean_j = 0, log_var_j = 0) has KL_j = 0: it costs no rate
  and carries no information. The converse does not hold: a constant non-zero mean, or sigma_j != 1, costs rate
  without telling anything about x (vae/evaluate.py counts the dimensions in use by another test).

  Args:
    mean, log_var: [..., latent_dim].
  Returns:
    [..., latent_dim]
  """
  return 0.5 * (tf.square(mean) + tf.exp(log_var) - log_var - 1.0)


def rate(mean, log_var):
  """KL(N(mean, diag(exp(log_var))) || N(0, I)) per example, in nats: the sum of `rate_per_dimension`.

  KL = 1/2 sum_j (mean_j^2 + exp(log_var_j) - log_var_j - 1)

  Args:
    mean, log_var: [B, latent_dim].
  Returns:
    [B]
  """
  return tf.reduce_sum(rate_per_dimension(mean, log_var), axis=-1)


def continuous_bernoulli_log_norm(logits):
  """log C(lambda) of the continuous Bernoulli with lambda = sigmoid(l), element-wise: [...] -> [...].

  log C = log(l / tanh(l / 2)) = log|l| - log|tanh(l / 2)|, and log 2 + l^2/12 - 7 l^4/1440 for |l| < TAYLOR_BELOW
  (see the module's docstring). The closed form is evaluated at a safe l where the series is used, so that
  neither branch's gradient is NaN.
  """
  small = tf.abs(logits) < TAYLOR_BELOW
  safe = tf.where(small, tf.ones_like(logits), logits)
  closed = tf.math.log(tf.abs(safe)) - tf.math.log(tf.abs(tf.tanh(0.5 * safe)))
  square = tf.square(logits)
  series = math.log(2.0) + square / 12.0 - 7.0 * tf.square(square) / 1440.0
  return tf.where(small, series, closed)


def distortion(x, logits, likelihood='bernoulli'):
  """-log p(x|z) for independent pixels with the given logits, per example, in nats.

  Bernoulli (the default):
  -log p(x|z) = sum_i [ -x_i log sigmoid(l_i) - (1 - x_i) log(1 - sigmoid(l_i)) ]
              = sum_i [ max(l_i, 0) - l_i x_i + log(1 + exp(-|l_i|)) ]

  The second form (what `tf.nn.sigmoid_cross_entropy_with_logits` computes) never takes the log of a sigmoid
  that has rounded to 0 or 1, so it stays finite for any logits. The continuous Bernoulli subtracts its log
  normaliser from each pixel's term: -log p(x|z) = sum_i [ cross-entropy_i - log C(l_i) ].

  Args:
    x: [B, D] targets in [0, 1] (grey levels or binarised pixels).
    logits: [B, D] decoder outputs.
    likelihood: 'bernoulli' or 'continuous_bernoulli'.
  Returns:
    [B]
  """
  per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits)          # [B, D]
  if likelihood == 'continuous_bernoulli':
    per_pixel = per_pixel - continuous_bernoulli_log_norm(logits)
  return tf.reduce_sum(per_pixel, axis=-1)


def mean_logits(logits, likelihood='bernoulli'):
  """Logits whose sigmoid is the likelihood's mean: `logits` themselves for the Bernoulli, logit(E[x]) for the
  continuous Bernoulli. [...] -> [...]"""
  if likelihood == 'bernoulli':
    return logits
  mean = likelihood_mean(logits, likelihood)
  return tf.math.log(mean) - tf.math.log1p(-mean)


def likelihood_mean(logits, likelihood='bernoulli'):
  """E[x] under p(x|z), element-wise: sigmoid(l) for the Bernoulli; for the continuous Bernoulli
  sigmoid(l) / tanh(l / 2) - 1 / l, and 1/2 + l/12 - l^3/720 for |l| < TAYLOR_BELOW. [...] -> [...]."""
  if likelihood == 'bernoulli':
    return tf.sigmoid(logits)
  small = tf.abs(logits) < TAYLOR_BELOW
  safe = tf.where(small, tf.ones_like(logits), logits)
  closed = tf.sigmoid(safe) / tf.tanh(0.5 * safe) - 1.0 / safe
  series = 0.5 + logits / 12.0 - logits * tf.square(logits) / 720.0
  return tf.where(small, series, closed)


def log_prior(z):
  """log p(z) = log N(z; 0, I) per example: z [..., latent_dim] -> [...]."""
  return -0.5 * tf.reduce_sum(tf.square(z) + LOG_2PI, axis=-1)


def log_approx_posterior(eps, log_var):
  """log q(z|x) = log N(z; mean, diag(exp(log_var))) at the reparameterised z = mean + sigma * eps, per example.

  This is the encoder's approximate posterior q(z|x), not the true posterior p(z|x). Since (z - mean) / sigma is
  eps itself, the density is written with eps, which avoids subtracting two nearly equal numbers:
  log q = -1/2 sum_j (eps_j^2 + log_var_j + log 2 pi).   eps, log_var [..., latent_dim] -> [...].
  """
  return -0.5 * tf.reduce_sum(tf.square(eps) + log_var + LOG_2PI, axis=-1)


def log_weight(sample_distortion, z, eps, log_var):
  """log w = log p(x|z) + log p(z) - log q(z|x) for one posterior sample z = mean + sigma * eps, per example.

  The Monte Carlo form (1) of the ELBO: E_q[log w] = ELBO(x). The (2 pi) factors of prior and posterior cancel.

  Args:
    sample_distortion: [...] -log p(x|z) of the sample (`distortion`); z, eps, log_var: [..., latent_dim].
  Returns:
    [...]
  """
  return -sample_distortion + log_prior(z) - log_approx_posterior(eps, log_var)


def importance_weighted_bound(log_w):
  """L_k = log (1/k) sum_i w_i = logsumexp_i(log w_i) - log k, the bound of Burda et al. [3], per example.

  With k = 1 it is log w_1, whose expectation is the ELBO; E[L_k] rises with k towards log p(x). Computed in log
  space: the w_i themselves (around e^-100 for an MNIST image) would underflow.

  Args:
    log_w: [k, ...] the log weights of k samples z_i ~ q(z|x) of each example.
  Returns:
    [...]
  """
  num_samples = tf.cast(tf.shape(log_w)[0], log_w.dtype)
  return tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(num_samples)


class VAE(tf.Module):
  """An encoder and a decoder, and the per-example ELBO terms they define.

  A `tf.Module` rather than a `keras.Model`: it has no layers and no training machinery of its own, only the two
  Keras networks and the maths that joins them, and tf.Module is the plain TensorFlow container that gives it
  `trainable_variables` for the gradient tape. The model knows nothing about training loops, optimisers or data:
  vae/train.py's `train_step` drives it (run.py through vae/run/engine.py, which runs that step).
  """

  def __init__(self, encoder, decoder, likelihood='bernoulli', name='vae'):
    super().__init__(name=name)
    if likelihood not in LIKELIHOODS:
      raise ValueError(f'likelihood {likelihood!r} is not one of {LIKELIHOODS}')
    self.encoder = encoder
    self.decoder = decoder
    self.likelihood = likelihood
    self.latent_dim = int(encoder.outputs[0].shape[-1])
    if int(decoder.inputs[0].shape[-1]) != self.latent_dim:
      raise ValueError(f'encoder produces {self.latent_dim}-d codes but the decoder expects '
                       f'{decoder.inputs[0].shape[-1]}-d ones')

  @property
  def trainable_variables(self):
    return self.encoder.trainable_variables + self.decoder.trainable_variables

  def encode(self, x, training=False):
    """x [B, D] -> (mean [B, latent_dim], log_var [B, latent_dim])."""
    mean, log_var = self.encoder(x, training=training)
    return mean, log_var

  def decode(self, z, training=False):
    """z [B, latent_dim] -> logits [B, D] of the likelihood's parameter lambda = sigmoid(logits)."""
    return self.decoder(z, training=training)

  def decode_mean_logits(self, z):
    """z [B, latent_dim] -> logits [B, D] whose sigmoid is the likelihood's mean E[x | z], what the pictures show:
    the decoder's own logits for the Bernoulli, logit(E[x]) for the continuous Bernoulli."""
    return mean_logits(self.decode(z), self.likelihood)

  def decode_samples(self, z, training=False):
    """z [S, B, latent_dim] -> logits [S, B, D]: all S*B codes decoded as one batch."""
    num_samples, batch = tf.shape(z)[0], tf.shape(z)[1]
    logits = self.decode(tf.reshape(z, [num_samples * batch, -1]), training=training)   # [S*B, D]
    return tf.reshape(logits, [num_samples, batch, -1])

  def terms(self, x, eps, training=False):
    """The per-example ELBO terms for images x [B, D] with posterior noise eps [B, latent_dim].

    Returns a dict of [B] tensors `rate`, `distortion`, `elbo`, and the posterior's `mean` and `log_var`,
    [B, latent_dim] each (the spread plot draws the means; `rate_per_dimension` of the two says which dimensions
    carry the rate, vae/evaluate.py).
    """
    mean, log_var = self.encode(x, training=training)         # [B, latent_dim] each
    z = reparameterize(mean, log_var, eps)                    # [B, latent_dim]
    logits = self.decode(z, training=training)                # [B, D]
    kl = rate(mean, log_var)                                  # [B]
    nll = distortion(x, logits, self.likelihood)              # [B]
    return {'rate': kl, 'distortion': nll, 'elbo': -(kl + nll), 'mean': mean, 'log_var': log_var}

  def k_sample_terms(self, x, eps, training=False):
    """The terms of k posterior samples per image: images x [B, D], k noise draws per image eps [k, B, latent_dim].

    Returns a dict: `rate` [B] (the closed-form KL, which needs no sample), `distortion` [k, B] (-log p(x|z_i))
    and `log_weight` [k, B] (log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)), with z_i = mean + sigma * eps_i.
    The k codes of all B images are decoded as one batch of k*B.
    """
    mean, log_var = self.encode(x, training=training)                      # [B, d] each
    z = reparameterize(mean, log_var, eps)                                 # [k, B, d] (broadcast over k)
    logits = self.decode_samples(z, training=training)                     # [k, B, D]
    nll = distortion(tf.broadcast_to(x, tf.shape(logits)), logits, self.likelihood)   # [k, B]
    return {'rate': rate(mean, log_var), 'distortion': nll,
            'log_weight': log_weight(nll, z, eps, log_var)}                # [B], [k, B], [k, B]
