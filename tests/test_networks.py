import numpy as np
import pytest
import tensorflow as tf

from vae import networks
from vae.run.config import ARCHITECTURES
from vae.model import VAE


@pytest.mark.parametrize('encoder_name', ['fc', 'conv'])
@pytest.mark.parametrize('decoder_name', ['fc', 'conv'])
@pytest.mark.parametrize('latent_dim', [1, 2, 7])
def test_every_encoder_decoder_pair_has_the_right_shapes(encoder_name, decoder_name, latent_dim):
  encoder = networks.build_encoder(encoder_name, latent_dim)
  decoder = networks.build_decoder(decoder_name, latent_dim)
  model = VAE(encoder, decoder)
  for batch in (1, 3):  # any batch size, no fixed-batch graph
    x = tf.random.uniform([batch, 784])
    mean, log_var = model.encode(x)
    assert mean.shape == (batch, latent_dim) and log_var.shape == (batch, latent_dim)
    logits = model.decode(mean)
    assert logits.shape == (batch, 784)
    terms = model.terms(x, tf.zeros([batch, latent_dim]))
    for key in ('rate', 'distortion', 'elbo'):
      assert terms[key].shape == (batch,)
      assert np.all(np.isfinite(terms[key].numpy()))


def test_layer_sizes_follow_the_original():
  encoder = networks.build_encoder('fc', 2)
  assert [l.units for l in encoder.layers if hasattr(l, 'units')] == [500, 500, 200, 4]
  decoder = networks.build_decoder('fc', 2)
  assert [l.units for l in decoder.layers if hasattr(l, 'units')] == [200, 500, 500, 784]
  conv = networks.build_encoder('conv', 2)
  assert [(l.filters, l.kernel_size, l.strides) for l in conv.layers if hasattr(l, 'filters')] == [
      (32, (5, 5), (2, 2)), (64, (5, 5), (2, 2)), (128, (3, 3), (2, 2))]
  deconv = networks.build_decoder('conv', 2)
  shapes = [tuple(l.output.shape[1:]) for l in deconv.layers if hasattr(l, 'filters')]
  assert shapes == [(3, 3, 128), (7, 7, 64), (14, 14, 32), (28, 28, 1)]


def test_the_registries_hold_exactly_the_names_the_flags_accept():
  # run.py checks --encoder_architecture against config.ARCHITECTURES before Keras is imported, so the two lists
  # must not drift apart.
  assert tuple(networks.ENCODERS) == ARCHITECTURES
  assert tuple(networks.DECODERS) == ARCHITECTURES


def test_a_new_architecture_is_one_builder_plus_one_registry_entry(monkeypatch):
  def tiny_decoder(latent_dim, image_shape):
    import keras
    z = keras.Input((latent_dim,))
    return keras.Model(z, keras.layers.Dense(int(np.prod(image_shape)))(z))

  monkeypatch.setitem(networks.DECODERS, 'tiny', tiny_decoder)
  model = VAE(networks.build_encoder('fc', 3), networks.build_decoder('tiny', 3))
  assert model.decode(tf.zeros([2, 3])).shape == (2, 784)


def test_mismatched_latent_sizes_are_refused():
  with pytest.raises(ValueError, match='encoder produces 2-d codes but the decoder expects 3-d'):
    VAE(networks.build_encoder('fc', 2), networks.build_decoder('fc', 3))


@pytest.mark.parametrize('architecture', ['fc', 'conv'])
@pytest.mark.parametrize('image_shape', [(28, 28, 1), (32, 32, 3), (32, 32, 1)])
def test_both_architectures_take_the_data_sets_image_shape(architecture, image_shape):
  values = int(np.prod(image_shape))
  encoder = networks.build_encoder(architecture, 4, image_shape)
  decoder = networks.build_decoder(architecture, 4, image_shape)
  mean, log_var = encoder(np.zeros((2, values), np.float32))
  assert mean.shape == (2, 4) and log_var.shape == (2, 4)
  assert decoder(np.zeros((2, 4), np.float32)).shape == (2, values)
