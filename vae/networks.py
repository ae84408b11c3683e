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

Every architecture is registered by name with `register`, the built-in ones below exactly as a pair of your own:

    register('mine', encoder=my_encoder, decoder=my_decoder)   # in a file of yours, e.g. my_networks.py
    python run.py --network_module=my_networks.py --encoder_architecture=mine --decoder_architecture=mine

A builder is `f(latent_dim, image_shape) -> keras.Model` with the contract above: an encoder's model takes one
input [B, D] and returns two outputs [mean, log_var], each [B, latent_dim]; a decoder's takes one input
[B, latent_dim] and returns one output [B, D] of logits, where D = H*W*C of `image_shape` (H, W, C). run.py builds
both and checks those shapes before any training. `takes(image_shape)` may say which shapes a pair can take (a
line saying why not, or None); `jit_compile` whether its training steps are compiled with XLA. The flags' names,
their --help, the shape rules, the engine path and the memory estimate all come from this registry, and this
module imports Keras only inside the builders, so that run.py checks the names before TensorFlow starts.
examples/residual_mlp.py is a complete pair of one's own.

References:
  [1] D. P. Kingma, M. Welling. Auto-Encoding Variational Bayes. ICLR 2014. https://arxiv.org/abs/1312.6114
"""

import dataclasses
import sys

from vae.preprocess import MNIST_SHAPE, num_values


def _split_into_mean_and_log_var(params):
  """[B, 2*latent_dim] -> ([B, latent_dim], [B, latent_dim]). The first half is the mean, the second log_var."""
  import keras
  mean, log_var = keras.ops.split(params, 2, axis=-1)
  return [mean, log_var]


def fc_encoder(latent_dim, image_shape=MNIST_SHAPE):
  """Fully connected encoder: D -> 500 -> 500 -> 200 -> (mean, log_var)."""
  import keras
  from keras import layers

  x = keras.Input(shape=(num_values(image_shape),), name='x')        # [B, D]
  h = layers.Dense(500, activation='relu')(x)                         # [B, 500]
  h = layers.Dense(500, activation='relu')(h)                         # [B, 500]
  h = layers.Dense(200, activation='relu')(h)                         # [B, 200]
  params = layers.Dense(2 * latent_dim, name='posterior_params')(h)   # [B, 2*latent_dim]
  return keras.Model(x, _split_into_mean_and_log_var(params), name='fc_encoder')


def fc_decoder(latent_dim, image_shape=MNIST_SHAPE):
  """Fully connected decoder: latent_dim -> 200 -> 500 -> 500 -> D logits."""
  import keras
  from keras import layers

  z = keras.Input(shape=(latent_dim,), name='z')                      # [B, latent_dim]
  h = layers.Dense(200, activation='relu')(z)                         # [B, 200]
  h = layers.Dense(500, activation='relu')(h)                         # [B, 500]
  h = layers.Dense(500, activation='relu')(h)                         # [B, 500]
  logits = layers.Dense(num_values(image_shape), name='logits')(h)    # [B, D]
  return keras.Model(z, logits, name='fc_decoder')


def conv_encoder(latent_dim, image_shape=MNIST_SHAPE):
  """Convolutional encoder: three strided convolutions, then 500 -> 200 -> (mean, log_var)."""
  import keras
  from keras import layers

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
  import keras
  from keras import layers

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



def fc_encoder_size(latent_dim, image_shape):
  """(weights, values per image) of the fc encoder, for the memory estimate: its matrices (biases aside) and the
  units of its layers."""
  d, values = latent_dim, num_values(image_shape)
  return values * 500 + 500 * 500 + 500 * 200 + 200 * 2 * d, values + 500 + 500 + 200 + 2 * d


def fc_decoder_size(latent_dim, image_shape):
  """(weights, values per image) of the fc decoder."""
  d, values = latent_dim, num_values(image_shape)
  return d * 200 + 200 * 500 + 500 * 500 + 500 * values, d + 200 + 500 + 500 + values


def conv_encoder_size(latent_dim, image_shape):
  """(weights, values per image) of the conv encoder (kernels and matrices, biases aside)."""
  height, _, channels = image_shape
  values = num_values(image_shape)
  weights = 25 * channels * 32 + 25 * 32 * 64 + 9 * 64 * 128 + 2048 * 500 + 500 * 200 + 200 * 2 * latent_dim
  half, quarter = -(-height // 2), -(-height // 4)
  return weights, values + half * half * 32 + quarter * quarter * 64 + 2 * 2048 + 700 + 2 * latent_dim


def conv_decoder_size(latent_dim, image_shape):
  """(weights, values per image) of the conv decoder."""
  height, _, channels = image_shape
  first = 9 if height == 28 else 16
  weights = first * latent_dim * 128 + 25 * 128 * 64 + 25 * 64 * 32 + 25 * 32 * channels
  half, quarter = height // 2, height // 4
  return weights, latent_dim + first * 128 + quarter * quarter * 64 + half * half * 32 + 2 * num_values(image_shape)


def conv_takes(image_shape):
  """The image shapes the conv pair is laid out for: 28x28 or 32x32, with 1 or 3 channels."""
  height, width, channels = image_shape
  if height == width and height in (28, 32) and channels in (1, 3):
    return None
  return (f'the conv networks take 28x28 or 32x32 images with 1 or 3 channels, not {height}x{width}x{channels}; '
          f'the fc networks take any shape')


@dataclasses.dataclass(frozen=True)
class Network:
  """One registered encoder or decoder: its builder, the image shapes it takes, and its engine path."""
  name: str
  build: object              # f(latent_dim, image_shape) -> keras.Model
  takes: object = None       # f(image_shape) -> why it cannot take them (one line), or None; None: any shape
  jit_compile: bool = False  # compile its training steps with XLA (when the other half is compiled too)
  size: object = None        # f(latent_dim, image_shape) -> (weights, values per image); None: from the built model
  module: str = None         # the module that registered it (None: this one)


# The registries behind --encoder_architecture and --decoder_architecture: {name: Network}, in registration order.
ENCODERS = {}
DECODERS = {}


def register(name, encoder=None, decoder=None, takes=None, jit_compile=False, encoder_size=None, decoder_size=None,
             module=None):
  """Registers an encoder builder, a decoder builder or both under `name`, for --encoder_architecture=name and
  --decoder_architecture=name.

  Args:
    name: a word (letters, digits, '_' and '-').
    encoder: f(latent_dim, image_shape) -> keras.Model, input [B, D], outputs [mean, log_var], each [B, latent_dim].
    decoder: f(latent_dim, image_shape) -> keras.Model, input [B, latent_dim], output the logits [B, D].
    takes: f(image_shape) -> None if the networks take images of this (H, W, C), else one line saying why not.
      Without it, every shape is taken.
    jit_compile: whether a run whose encoder and decoder both say so compiles its steps with XLA (fast for dense
      layers on a CPU; TensorFlow's own kernels are faster for convolutions there). Changes the run's numbers.
    encoder_size, decoder_size: f(latent_dim, image_shape) -> (number of weights, values its layers produce per
      image), for the memory check before a run; without them run.py builds the networks and counts.
    module: who registers it, for messages; by default the caller's module.
  """
  if not isinstance(name, str) or not name or not all(c.isalnum() or c in '_-' for c in name):
    raise ValueError(f'a network name is a word of letters, digits, "_" and "-", not {name!r}')
  if encoder is None and decoder is None:
    raise ValueError(f'register({name!r}) needs an encoder, a decoder or both')
  for which, builder in (('encoder', encoder), ('decoder', decoder)):
    if builder is not None and not callable(builder):
      raise ValueError(f'the {which} of {name!r} must be a function f(latent_dim, image_shape) -> keras.Model')
  if takes is not None and not callable(takes):
    raise ValueError(f'takes= of {name!r} must be a function f(image_shape) -> None or a reason')
  if module is None:
    module = _caller_module()
  for registry, builder, size in ((ENCODERS, encoder, encoder_size), (DECODERS, decoder, decoder_size)):
    if builder is None:
      continue
    known = registry.get(name)
    if known is not None and known.module != module:
      raise ValueError(f'the network name {name!r} is taken (by {known.module or "vae.networks"}); choose another')
    registry[name] = Network(name, builder, takes, bool(jit_compile), size, module)


def _caller_module():
  frame = sys._getframe(2)  # register's caller
  name = frame.f_globals.get('__name__')
  return None if name == __name__ else name


def build_encoder(architecture, latent_dim, image_shape=MNIST_SHAPE):
  """The encoder registered as `architecture`, for codes of size `latent_dim` and images of `image_shape` (one that
  its `takes` accepts)."""
  return ENCODERS[architecture].build(int(latent_dim), tuple(image_shape))


def build_decoder(architecture, latent_dim, image_shape=MNIST_SHAPE):
  """The decoder registered as `architecture`, for codes of size `latent_dim` and images of `image_shape`."""
  return DECODERS[architecture].build(int(latent_dim), tuple(image_shape))


def shape_problem(which, architecture, image_shape):
  """Why the `which` ('encoder' or 'decoder') registered as `architecture` cannot take images of `image_shape`
  (H, W, C), as one line, or None if it can."""
  network = (ENCODERS if which == 'encoder' else DECODERS)[architecture]
  return network.takes(tuple(image_shape)) if network.takes else None


def use_xla(encoder_architecture, decoder_architecture):
  """Whether a run with this pair compiles its training steps with XLA: when both halves were registered with
  jit_compile=True (the fc pair: XLA fuses its element-wise work and Adam update into few kernels, while its CPU
  convolutions are slower than TensorFlow's own; docs/performance.md)."""
  return ENCODERS[encoder_architecture].jit_compile and DECODERS[decoder_architecture].jit_compile


register('fc', encoder=fc_encoder, decoder=fc_decoder, jit_compile=True, encoder_size=fc_encoder_size,
         decoder_size=fc_decoder_size)
register('conv', encoder=conv_encoder, decoder=conv_decoder, takes=conv_takes, encoder_size=conv_encoder_size,
         decoder_size=conv_decoder_size)
