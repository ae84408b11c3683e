import numpy as np
import pytest
import tensorflow as tf

from vae import networks
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


def test_the_built_in_pairs_are_registered_with_their_shape_rules_engine_path_and_sizes():
  assert list(networks.ENCODERS) == list(networks.DECODERS) == ['fc', 'conv']
  assert networks.use_xla('fc', 'fc') and not networks.use_xla('fc', 'conv') and not networks.use_xla('conv', 'fc')
  assert networks.shape_problem('encoder', 'conv', (28, 28, 1)) is None
  assert networks.shape_problem('decoder', 'conv', (30, 30, 1)).startswith('the conv networks take 28x28 or 32x32')
  assert networks.shape_problem('encoder', 'fc', (5, 7, 3)) is None
  # The declared sizes are the built networks' matrices and kernels (biases aside).
  for name in ('fc', 'conv'):
    for image_shape in ((28, 28, 1), (32, 32, 3)):
      for which, build in (('encoder', networks.build_encoder), ('decoder', networks.build_decoder)):
        model = build(name, 3, image_shape)
        kernels = sum(int(np.prod(w.shape)) for w in model.weights if len(w.shape) > 1)
        declared = getattr(networks, f'{which.upper()}S')[name].size(3, image_shape)[0]
        assert declared == kernels, (name, which, image_shape)


def test_a_new_architecture_is_one_builder_and_one_register_call(monkeypatch):
  def tiny_decoder(latent_dim, image_shape):
    import keras
    z = keras.Input((latent_dim,))
    return keras.Model(z, keras.layers.Dense(int(np.prod(image_shape)))(z))

  monkeypatch.setattr(networks, 'DECODERS', dict(networks.DECODERS))
  networks.register('tiny', decoder=tiny_decoder)
  assert networks.DECODERS['tiny'].module == __name__ and 'tiny' not in networks.ENCODERS
  model = VAE(networks.build_encoder('fc', 3), networks.build_decoder('tiny', 3))
  assert model.decode(tf.zeros([2, 3])).shape == (2, 784)
  with pytest.raises(ValueError, match="the network name 'fc' is taken"):
    networks.register('fc', decoder=tiny_decoder)
  with pytest.raises(ValueError, match='a network name is a word'):
    networks.register('my net', decoder=tiny_decoder)


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
