"""Training: one Adam step on the loss, a plain training loop built from it, and that loop run on MNIST.

Read `train_step` first: it is the whole of the VAE's training algorithm (Kingma & Welling [1], Algorithm 1).
For a minibatch x [B, D] and one posterior noise draw eps ~ N(0, I) per image, the default loss
(vae/objectives.py's `negative_elbo`)

    loss = 1/B sum_b [ rate(x_b) + distortion(x_b, z_b) ],   z_b = mu(x_b) + sigma(x_b) * eps_b

is the minibatch estimate of -ELBO (see model.py); its gradient with respect to the encoder and decoder
weights is an unbiased estimate of the gradient of the -ELBO, thanks to the reparameterisation, and Adam [2]
takes one step along it. `--beta` and `--kl_warmup_steps` weigh the rate by a factor lambda(t) instead of 1
(`rate_weight_at`): the beta-VAE objective [3] and KL warm-up [4, 5]; with the defaults lambda = 1 and the loss is
exactly -ELBO. Several posterior samples per image (`--train_k`) and the importance-weighted bound
(`--objective=iwae`, Burda et al. [6]) are other losses of vae/objectives.py, which names every objective and the
estimator it uses; `train_step` takes any of them.

`train_loop` then shows a complete training run on one screen: shuffled minibatches, fresh noise for every step,
one `train_step` each, the loss printed now and then. It is all there is to training a VAE, and it runs as it is:

    vae-plain-loop --data_dir=../mnist          # MNIST, the default fc VAE, 100 x 100 steps of 128
    vae-plain-loop --eager --steps=20           # every step op by op: a debugger sees concrete tensors

trains on real MNIST (loaded by vae/data.py), prints the loss as it goes, then the test ELBO (vae/evaluate.py),
and saves one picture (the command line is vae/commands/plain_loop.py, also `python -m vae.commands.plain_loop`).

Traced or eager, the one home of this explanation: by default `train_step` is traced once into a TensorFlow graph
(`tf.function`) and each step runs that graph: Python executes `train_step`, the loss and `VAE.terms` only while
tracing, on symbolic tensors, so a breakpoint there stops once or twice at the start and never shows a number.
With `eager=True` (`--eager`) every step runs them in Python, op by op, so a breakpoint in `train_step`, in
vae/objectives.py or in `VAE.terms` stops at every step with concrete tensors whose `.numpy()` can be printed
(`python -m pdb -m vae.commands.plain_loop --eager --steps=20`). It costs about four times the time
(docs/running.md, "The plain loop, run", gives the measurement). run.py trains the same model with the compiled
engine of vae/run/engine.py, which runs this very `train_step` several steps at a time, and adds everything a
research run needs: checkpoints and resume, every flag, binarisation, frames and gifs, the log-likelihood
estimate.

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

import numpy as np
import tensorflow as tf

from vae import objectives


def train_step(model, optimizer, x, eps, rate_weight=1.0, loss=objectives.negative_elbo):
  """One Adam step on `loss(model, x, eps, rate_weight)`; returns that loss.

  x [B, D] targets in [0, 1]; eps [B, latent_dim] for the default loss, -ELBO when rate_weight = 1 (other weights
  give the beta-VAE objective and KL warm-up, see `rate_weight_at`), or [k, B, latent_dim] for the k-sample
  losses of vae/objectives.py.
  """
  with tf.GradientTape() as tape:
    value = loss(model, x, eps, rate_weight)                   # a scalar: the batch mean
  grads = tape.gradient(value, model.trainable_variables)
  optimizer.apply_gradients(zip(grads, model.trainable_variables))
  return value


def rate_weight_at(step, beta=1.0, kl_warmup_steps=0):
  """The weight of the rate at training step `step` (0, 1, ...): beta (Higgins et al. [3]), reached linearly from
  0 over the first `kl_warmup_steps` steps (KL warm-up, Bowman et al. [4], Sonderby et al. [5]).

  A pure function of the global step, so that a resumed run weighs every step as an uninterrupted one does.
  """
  if kl_warmup_steps <= 0:
    return tf.constant(beta, tf.float32)
  ramp = tf.minimum(1.0, tf.cast(step, tf.float32) / float(kl_warmup_steps))
  return beta * ramp


def train_loop(model, optimizer, images, steps, batch_size=128, seed=0, beta=1.0, kl_warmup_steps=0,
               objective='elbo', train_k=1, eager=False, log=print, log_every=100):
  """Trains `model` for `steps` steps on float32 images [N, D] in [0, 1]; returns the losses, one per step.

  Each pass over the data is a fresh shuffle, cut into batches of `batch_size`; the last, incomplete batch of a
  pass is dropped. Each step draws fresh noise eps ~ N(0, I) from a generator seeded by `seed`, one sample per
  image or `train_k` of them (vae/objectives.py). `eager`: run every step in Python, op by op, instead of as a
  traced graph (slower; for stepping through with a debugger).
  """
  loss = objectives.training_loss(objective, train_k)
  samples = objectives.samples_per_image(objective, train_k)  # None: eps [B, d]; k: eps [k, B, d]
  step_fn = train_step if eager else tf.function(train_step)  # a graph is traced once, then run at each call
  noise = tf.random.Generator.from_seed(seed)
  order = np.random.default_rng(seed).permutation(len(images))
  losses = []
  for step in range(steps):
    if len(order) < batch_size:                # a new pass over the data: a fresh shuffle
      order = np.random.default_rng([seed, step]).permutation(len(images))
    batch, order = order[:batch_size], order[batch_size:]
    x = tf.constant(images[batch])                                   # [B, D]
    eps = noise.normal(([] if samples is None else [samples]) + [batch_size, model.latent_dim])  # [(k,) B, d]
    weight = rate_weight_at(step, beta, kl_warmup_steps)             # 1 with the defaults: the ELBO
    losses.append(float(step_fn(model, optimizer, x, eps, weight, loss)))
    if step % log_every == 0 or step == steps - 1:
      log(f'step {step}: loss {losses[-1]:.2f}')
  return losses
