"""Training: one Adam step on the negative ELBO, a plain training loop built from it, and that loop run on MNIST.

Read `train_step` first: it is the whole of the VAE's training algorithm (Kingma & Welling [1], Algorithm 1).
For a minibatch x [B, D] and one posterior noise draw eps ~ N(0, I) per image,

    loss = 1/B sum_b [ rate(x_b) + distortion(x_b, z_b) ],   z_b = mu(x_b) + sigma(x_b) * eps_b

is the minibatch estimate of -ELBO (see model.py); its gradient with respect to the encoder and decoder
weights is an unbiased estimate of the gradient of the -ELBO, thanks to the reparameterisation, and Adam [2]
takes one step along it. `--beta` and `--kl_warmup_steps` weigh the rate by a factor lambda(t) instead of 1
(`rate_weight_at`): the beta-VAE objective [3] and KL warm-up [4, 5]; with the defaults lambda = 1 and the loss is
exactly -ELBO.

`train_loop` then shows a complete training run on one screen: shuffled minibatches, fresh noise for every step,
one `train_step` each, the loss printed now and then. It is all there is to training a VAE, and it runs as it is:

    python -m vae.train --data_dir=../mnist        # MNIST, the default fc VAE, 100 x 100 steps of 128

trains on real MNIST (loaded by vae/data.py), prints the loss as it goes, then the test ELBO (vae/evaluate.py), and
saves one picture (`main`, at the end of this file). A breakpoint in `train_step` or in `VAE.terms` then sees the
real tensors of a real run. run.py trains the same model with the compiled engine of vae/engine.py, which runs
this very `train_step` several steps at a time, and adds everything a research run needs: checkpoints and resume,
every flag, binarisation, frames and gifs, the log-likelihood estimate.

Several importance samples per image (`--train_k`, `--objective`, Burda et al. [6]) come next, in
`k_sample_loss`: with k samples z_1..z_k ~ q(z|x) and log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)
(model.py's `VAE.k_sample_terms`),

    elbo:  1/k sum_i distortion(x, z_i) + rate(x)          the ELBO, its expectation term averaged over k samples
    iwae:  -L_k = -(logsumexp_i log w_i - log k)             the importance-weighted bound, tighter as k grows
                                                            (model.py's `importance_weighted_bound`)

With k = 1 the first is exactly `train_step`'s loss, and the engine then runs `train_step` itself.

References:
  [1] D. P. Kingma, M. Welling. Auto-Encoding Variational Bayes. ICLR 2014. https://arxiv.org/abs/1312.6114
  [2] D. P. Kingma, J. Ba. Adam: A Method for Stochastic Optimization. ICLR 2015. https://arxiv.org/abs/1412.6980
  [3] I. Higgins et al. beta-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework.
      ICLR 2017.
  [4] S. R. Bowman et al. Generating Sentences from a Continuous Space. CoNLL 2016.
      https://arxiv.org/abs/1511.06349
  [5] C. K. Sonderby et al. Ladder Variational Autoencoders. NeurIPS 2016. https://arxiv.org/abs/1602.02282
  [6] Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
      https://arxiv.org/abs/1509.00519
"""

import sys

if __name__ == '__main__':  # python -m vae.train: TensorFlow's C++ start-up lines kept off the terminal
  from vae.quiet import import_tensorflow
  import_tensorflow()

import numpy as np
import tensorflow as tf

from vae.model import importance_weighted_bound

OBJECTIVES = ('elbo', 'iwae')


def train_step(model, optimizer, x, eps, rate_weight=1.0):
  """One Adam step on the batch mean of distortion + rate_weight * rate; returns that loss.

  x [B, D] targets in [0, 1], eps [B, latent_dim]. With rate_weight = 1 the loss is -ELBO; other weights give the
  beta-VAE objective and KL warm-up (see `rate_weight_at`).
  """
  with tf.GradientTape() as tape:
    terms = model.terms(x, eps, training=True)                                # rate, distortion: [B] each
    loss = tf.reduce_mean(terms['distortion'] + rate_weight * terms['rate'])  # -mean ELBO when rate_weight = 1
  grads = tape.gradient(loss, model.trainable_variables)
  optimizer.apply_gradients(zip(grads, model.trainable_variables))
  return loss


def rate_weight_at(step, beta=1.0, kl_warmup_steps=0):
  """The weight of the rate at training step `step` (0, 1, ...): beta (Higgins et al. [3]), reached linearly from
  0 over the first `kl_warmup_steps` steps (KL warm-up, Bowman et al. [4], Sonderby et al. [5]).

  A pure function of the global step, so that a resumed run weighs every step as an uninterrupted one does.
  """
  if kl_warmup_steps <= 0:
    return tf.constant(beta, tf.float32)
  ramp = tf.minimum(1.0, tf.cast(step, tf.float32) / float(kl_warmup_steps))
  return beta * ramp


def train_loop(model, optimizer, images, steps, batch_size=128, seed=0, beta=1.0, kl_warmup_steps=0, log=print,
               log_every=100):
  """Trains `model` for `steps` steps on float32 images [N, D] in [0, 1]; returns the losses, one per step.

  Each pass over the data is a fresh shuffle, cut into batches of `batch_size`; the last, incomplete batch of a
  pass is dropped. Each step draws fresh noise eps ~ N(0, I) from a generator seeded by `seed`.
  """
  step_fn = tf.function(train_step)            # traced into a graph once, then each call runs that graph
  noise = tf.random.Generator.from_seed(seed)
  order = np.random.default_rng(seed).permutation(len(images))
  losses = []
  for step in range(steps):
    if len(order) < batch_size:                # a new pass over the data: a fresh shuffle
      order = np.random.default_rng([seed, step]).permutation(len(images))
    batch, order = order[:batch_size], order[batch_size:]
    x = tf.constant(images[batch])                                   # [B, D]
    eps = noise.normal([batch_size, model.latent_dim])               # [B, latent_dim]
    weight = rate_weight_at(step, beta, kl_warmup_steps)             # 1 with the defaults: the ELBO
    losses.append(float(step_fn(model, optimizer, x, eps, weight)))
    if step % log_every == 0 or step == steps - 1:
      log(f'step {step}: loss {losses[-1]:.2f}')
  return losses


# ------------------------------------------------------------------------ several importance samples per image


def k_sample_loss(model, x, eps, objective='elbo', rate_weight=1.0):
  """The batch mean of the k-sample training objective; x [B, D], eps [k, B, latent_dim].

  'elbo': mean_b [ 1/k sum_i distortion(x_b, z_ib) + rate_weight * rate(x_b) ]    (Burda et al.'s "VAE")
  'iwae': mean_b [ -L_k(x_b) ],  L_k = logsumexp_i log w_ib - log k              (Burda et al.'s "IWAE")
  The IWAE bound has no rate term of its own to weigh, so `rate_weight` applies to 'elbo' only.
  """
  terms = model.k_sample_terms(x, eps, training=True)          # rate [B], distortion and log_weight [k, B]
  if objective == 'iwae':
    return -tf.reduce_mean(importance_weighted_bound(terms['log_weight']))
  return tf.reduce_mean(tf.reduce_mean(terms['distortion'], axis=0) + rate_weight * terms['rate'])


def k_sample_step(model, optimizer, x, eps, objective='elbo', rate_weight=1.0):
  """One Adam step on `k_sample_loss`; returns that loss. eps [k, B, latent_dim]."""
  with tf.GradientTape() as tape:
    loss = k_sample_loss(model, x, eps, objective, rate_weight)
  grads = tape.gradient(loss, model.trainable_variables)
  optimizer.apply_gradients(zip(grads, model.trainable_variables))
  return loss


# ------------------------------------------------------------------------ the plain loop on real data


PLAIN_LOOP_SETTINGS = ('data_dir', 'batch_size', 'latent_dim', 'learning_rate', 'seed', 'beta', 'kl_warmup_steps')


def main(argv):
  """python -m vae.train: `train_loop` on MNIST with the default fc VAE; returns the exit status."""
  import dataclasses
  import os
  import time

  import keras
  from absl import flags

  from vae import config as config_lib, data, evaluate, gifs, networks, viz
  from vae.errors import VAEError, fail
  from vae.fileio import ensure_writable_dir
  from vae.model import VAE

  defaults = config_lib.Config()
  flag_values = flags.FlagValues()  # its own flags, apart from run.py's
  config_lib.define_flags(flag_values, PLAIN_LOOP_SETTINGS)
  flags.DEFINE_integer('steps', defaults.epochs * defaults.updates_per_epoch,
                       'Training steps (the default is run.py\'s 100 epochs of 100).', flag_values=flag_values)
  flags.DEFINE_string('picture', 'plain_loop.png', 'Where to save the picture: the decoded 15x15 grid over the '
                      'latent plane with --latent_dim=2, 100 prior samples otherwise.', flag_values=flag_values)
  if any(argument in ('-h', '--help', '--helpshort', '--helpfull') for argument in argv[1:]):
    print('python -m vae.train: train_loop on MNIST with the default fc VAE.\n\nflags:\n' + flag_values.get_help())
    return 0
  try:
    arguments = flag_values(argv)
  except flags.Error as e:
    return fail(f'{e} (see python -m vae.train --help)')
  if len(arguments) > 1:
    return fail(f'unexpected arguments: {" ".join(arguments[1:])} (flags look like --name=value)')
  config = dataclasses.replace(defaults, **{name: flag_values[name].value for name in PLAIN_LOOP_SETTINGS})
  problem = config_lib.problem(config) or (
      f'--steps must be a positive integer, got {flag_values.steps}' if flag_values.steps < 1 else None)
  if problem:
    return fail(problem)

  try:  # the data and the picture's directory are checked before any training
    mnist = data.load('mnist', config.data_dir)
    ensure_writable_dir(os.path.dirname(flag_values.picture) or '.', what='picture directory')
  except VAEError as e:
    return fail(str(e))
  print(f'MNIST from {config.data_dir}: {len(mnist.train_images):,} training and {len(mnist.test_images):,} test '
        f'images; {flag_values.steps:,} steps of {config.batch_size}')
  keras.utils.set_random_seed(config.seed)  # the initial weights
  model = VAE(networks.build_encoder('fc', config.latent_dim), networks.build_decoder('fc', config.latent_dim))
  optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)

  started = time.perf_counter()
  try:
    train_loop(model, optimizer, mnist.train_images, flag_values.steps, config.batch_size, config.seed,
               config.beta, config.kl_warmup_steps, log_every=500)
  except KeyboardInterrupt:  # nothing is saved during the loop, so nothing is lost but the training
    return fail('interrupted', status=130)
  seconds = time.perf_counter() - started

  test = evaluate.make_evaluator(model)(mnist.test_images,
                                         evaluate.eval_noise(config.seed, len(mnist.test_images), config.latent_dim))
  print(f'test elbo {test["elbo"].mean():.2f}  rate {test["rate"].mean():.2f}  distortion '
        f'{test["distortion"].mean():.2f}  ({seconds:.0f} s of training)')

  if config.latent_dim == 2:
    picture = viz.canvas_frame(model.decode(viz.latent_grid()).numpy())
  else:
    prior = np.random.default_rng(config.seed).normal(size=(100, config.latent_dim)).astype(np.float32)
    picture = viz.probability_tile(model.decode(prior).numpy(), 10, 10)
  try:
    gifs.save_png(flag_values.picture, picture)
  except OSError as e:
    return fail(f'cannot write {flag_values.picture}: {e.strerror or e}')
  print(f'wrote {flag_values.picture}')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
