"""A pair of networks of your own, without changing the clone: a residual MLP encoder and decoder.

    python run.py --network_module=examples/residual_mlp.py \
        --encoder_architecture=resmlp --decoder_architecture=resmlp --output_dir=runs/resmlp

Each network is a projection to WIDTH units, BLOCKS residual blocks h + W2 relu(W1 LayerNorm(h)) (He et al. 2016,
in the pre-activation form), and a projection out. The builders keep vae/networks.py's contract: the encoder
takes x [B, D] and returns [mean, log_var], each [B, latent_dim]; the decoder takes z [B, latent_dim] and returns
D logits. They use Keras's own layers only, so the exported .keras files load anywhere; a layer class of your own
needs @keras.saving.register_keras_serializable() in this file.

References:
  [1] K. He, X. Zhang, S. Ren, J. Sun. Identity Mappings in Deep Residual Networks. ECCV 2016.
      https://arxiv.org/abs/1603.05027
"""

import keras
from keras import layers

from vae import networks

WIDTH = 256
BLOCKS = 2


def _residual_blocks(h):
  for _ in range(BLOCKS):
    r = layers.LayerNormalization()(h)                    # [B, WIDTH]
    r = layers.Dense(WIDTH, activation='relu')(r)         # [B, WIDTH]
    r = layers.Dense(WIDTH)(r)                            # [B, WIDTH]
    h = layers.Add()([h, r])                              # [B, WIDTH]
  return layers.ReLU()(layers.LayerNormalization()(h))    # [B, WIDTH]


def residual_encoder(latent_dim, image_shape):
  """x [B, D] -> [mean, log_var], each [B, latent_dim]."""
  height, width, channels = image_shape
  x = keras.Input(shape=(height * width * channels,), name='x')           # [B, D]
  h = _residual_blocks(layers.Dense(WIDTH)(x))                             # [B, WIDTH]
  params = layers.Dense(2 * latent_dim, name='posterior_params')(h)       # [B, 2*latent_dim]
  mean, log_var = keras.ops.split(params, 2, axis=-1)                      # [B, latent_dim] each
  return keras.Model(x, [mean, log_var], name='residual_encoder')


def residual_decoder(latent_dim, image_shape):
  """z [B, latent_dim] -> logits [B, D]."""
  height, width, channels = image_shape
  z = keras.Input(shape=(latent_dim,), name='z')                           # [B, latent_dim]
  h = _residual_blocks(layers.Dense(WIDTH)(z))                             # [B, WIDTH]
  logits = layers.Dense(height * width * channels, name='logits')(h)      # [B, D]
  return keras.Model(z, logits, name='residual_decoder')


# Any image shape; dense layers, so XLA compiles the training steps as it does the fc pair's.
networks.register('resmlp', encoder=residual_encoder, decoder=residual_decoder, jit_compile=True)
