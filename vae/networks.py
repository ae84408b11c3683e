"""Encoder and decoder networks: the two halves of the VAE, as Keras 3 models.

An *encoder* maps a batch of flattened images x [B, D] (D = H*W*C, 784 for MNIST) to the parameters of the
approximate posterior q(z|x) = N(mean, diag(exp(log_var))): two tensors `mean` and `log_var`, each [B, latent_dim].
Predicting the log of the variance keeps the variance positive without a constraint and keeps gradients well scaled.

A *decoder* maps latent codes z [B, latent_dim] to the D Bernoulli *logits* of p(x|z), one per pixel value. Returning
logits rather than probabilities lets the loss use the numerically stable sigmoid cross-entropy (see model.py).

Both architectures of the original script are here, with its layer sizes and ReLU hidden units; any encoder works
with any decoder, since they only meet at z:

    fc encoder    D -> 500 -> 500 -> 200 -> 2*latent_dim                          (any image shape)
    fc decoder    latent_dim -> 200 -> 500 -> 500 -> D
    conv encoder  HxWxC -> conv 32 5x5/2 -> conv 64 5x5/2 -> conv 128 3x3/2 (4x4) -> flatten -> 500 -> 200
                  -> 2*latent_dim                                        (28x28 or 32x32, 1 or 3 channels)
    conv decoder  z as 1x1xlatent_dim -> deconv 128 3x3 valid (3x3) -> deconv 64 5x5 valid (7x7)
                  -> deconv 32 5x5/2 (14x14) -> deconv C 5x5/2 (28x28) -> D logits
                  for 32x32: deconv 128 4x4 valid (4x4) -> deconv 64 5x5/2 (8x8) -> 16x16 -> 32x32

To add an architecture, write one builder `def my_encoder(latent_dim, image_shape) -> keras.Model` (or decoder),
add it to `ENCODERS` (or `DECODERS`) under a new name, and add that name to `ARCHITECTURES` in vae/run/config.py
(with the image shapes it takes in `shape_problem` there, if it cannot take every shape);
`--encoder_architecture=<name>` then selects it. run.py checks the names and shapes before Keras is imported, so
the builders here take them as given.

References:
  [1] D. P. Kingma, M. Welling. Auto-Encoding Variational Bayes. ICLR 2014. https://arxiv.org/abs/1312.6114
"""

import keras
from keras import layers

from vae.preprocess import MNIST_SHAPE, num_values


def _split_into_mean_and_log_var(params):
  """[B, 2*latent_dim] -> ([B, latent_dim], [B, latent_dim]). The first half is the mean, the second log_var."""
  mean, log_var = keras.ops.split(params, 2, axis=-1)
  return [mean, log_var]


def fc_encoder(latent_dim, image_shape=MNIST_SHAPE):
  """Fully connected encoder: D -> 500 -> 500 -> 200 -> (mean, log_var)."""
  x = keras.Input(shape=(num_values(image_shape),), name='x')        # [B, D]
  h = layers.Dense(500, activation='relu')(x)                         # [B, 500]
  h = layers.Dense(500, activation='relu')(h)                         # [B, 500]
  h = layers.Dense(200, activation='relu')(h)                         # [B, 200]
  params = layers.Dense(2 * latent_dim, name='posterior_params')(h)   # [B, 2*latent_dim]
  return keras.Model(x, _split_into_mean_and_log_var(params), name='fc_encoder')


def fc_decoder(latent_dim, image_shape=MNIST_SHAPE):
  """Fully connected decoder: latent_dim -> 200 -> 500 -> 500 -> D logits."""
  z = keras.Input(shape=(latent_dim,), name='z')                      # [B, latent_dim]
  h = layers.Dense(200, activation='relu')(z)                         # [B, 200]
  h = layers.Dense(500, activation='relu')(h)                         # [B, 500]
  h = layers.Dense(500, activation='relu')(h)                         # [B, 500]
  logits = layers.Dense(num_values(image_shape), name='logits')(h)    # [B, D]
  return keras.Model(z, logits, name='fc_decoder')


def conv_encoder(latent_dim, image_shape=MNIST_SHAPE):
  """Convolutional encoder: three strided convolutions, then 500 -> 200 -> (mean, log_var)."""
  x = keras.Input(shape=(num_values(image_shape),), name='x')                         # [B, D]
  # Shapes for 28x28 images (32x32 ones in brackets): each stride-2 layer halves the size, rounding up.
  h = layers.Reshape(image_shape)(x)                                                   # [B, 28, 28, C]
  h = layers.Conv2D(32, 5, strides=2, padding='same', activation='relu')(h)           # [B, 14, 14, 32] (16x16)
  h = layers.Conv2D(64, 5, strides=2, padding='same', activation='relu')(h)           # [B, 7, 7, 64]   (8x8)
  h = layers.Conv2D(128, 3, strides=2, padding='same', activation='relu')(h)          # [B, 4, 4, 128]  (the same)
  h = layers.Flatten()(h)                                                              # [B, 2048]
  h = layers.Dense(500, activation='relu')(h)                                          # [B, 500]
  h = layers.Dense(200, activation='relu')(h)                                          # [B, 200]
  params = layers.Dense(2 * latent_dim, name='posterior_params')(h)                    # [B, 2*latent_dim]
  return keras.Model(x, _split_into_mean_and_log_var(params), name='conv_encoder')


def conv_decoder(latent_dim, image_shape=MNIST_SHAPE):
  """Convolutional decoder: z as a 1x1 image, grown to HxW by four transposed convolutions."""
  height, _, channels = image_shape
  z = keras.Input(shape=(latent_dim,), name='z')                                      # [B, latent_dim]
  h = layers.Reshape((1, 1, latent_dim))(z)                                            # [B, 1, 1, latent_dim]
  if height == 28:
    h = layers.Conv2DTranspose(128, 3, padding='valid', activation='relu')(h)         # [B, 3, 3, 128]
    h = layers.Conv2DTranspose(64, 5, padding='valid', activation='relu')(h)          # [B, 7, 7, 64]
  else:  # 32
    h = layers.Conv2DTranspose(128, 4, padding='valid', activation='relu')(h)         # [B, 4, 4, 128]
    h = layers.Conv2DTranspose(64, 5, strides=2, padding='same', activation='relu')(h)  # [B, 8, 8, 64]
  h = layers.Conv2DTranspose(32, 5, strides=2, padding='same', activation='relu')(h)  # [B, 14, 14, 32] (16x16)
  h = layers.Conv2DTranspose(channels, 5, strides=2, padding='same')(h)               # [B, 28, 28, C] (32x32)
  logits = layers.Reshape((num_values(image_shape),), name='logits')(h)               # [B, D]
  return keras.Model(z, logits, name='conv_decoder')


# The registries behind --encoder_architecture and --decoder_architecture.
ENCODERS = {'fc': fc_encoder, 'conv': conv_encoder}
DECODERS = {'fc': fc_decoder, 'conv': conv_decoder}


def build_encoder(architecture, latent_dim, image_shape=MNIST_SHAPE):
  """The encoder registered as `architecture`, for codes of size `latent_dim` and images of `image_shape` (one that
  `vae.run.config.shape_problem` accepts)."""
  return _build(ENCODERS, architecture, latent_dim, image_shape)


def build_decoder(architecture, latent_dim, image_shape=MNIST_SHAPE):
  """The decoder registered as `architecture`, for codes of size `latent_dim` and images of `image_shape`."""
  return _build(DECODERS, architecture, latent_dim, image_shape)


def _build(registry, architecture, latent_dim, image_shape):
  return registry[architecture](int(latent_dim), tuple(image_shape))
