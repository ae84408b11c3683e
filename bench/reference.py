"""The plain TF2 training loop the benchmark compares against: the TensorFlow CVAE tutorial's recipe.

GradientTape inside a `tf.function` (no XLA), Keras Adam, images batched by tf.data from an in-memory array, one
Python call per step. Same networks, same loss, no tuning. Kept deliberately plain: it is the yardstick.
"""

import time

import keras
import tensorflow as tf

from vae.model import VAE


def make_reference(model: VAE, train_images, batch_size, learning_rate=2e-4, seed=0):
  """Returns (step, batches): `step(x)` trains on one batch and returns the loss; `batches` yields x [B, 784]."""
  optimizer = keras.optimizers.Adam(learning_rate)
  latent_dim = model.latent_dim

  @tf.function
  def step(x):
    eps = tf.random.normal([tf.shape(x)[0], latent_dim])
    with tf.GradientTape() as tape:
      terms = model.terms(x, eps, training=True)
      loss = tf.reduce_mean(terms['rate'] + terms['distortion'])
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  batches = (tf.data.Dataset.from_tensor_slices(train_images).shuffle(len(train_images), seed=seed)
             .repeat().batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
  return step, iter(batches)


def first_step_time(data_dir, batch_size=128):
  """Loads the MNIST files in `data_dir`, builds the default model and the reference loop, and returns the Unix time
  at which the loop's first step starts (bench.py runs this in a fresh process to time the reference's start-up)."""
  from vae import data
  from vae.run.config import Config
  from vae.run.state import build_model

  mnist = data.load('mnist', data_dir)
  step, batches = make_reference(build_model(Config()), mnist.train_images, batch_size)
  x = next(batches)
  started = time.time()
  step(x)
  return started
