"""The machine's own limits, so that throughput figures from different CPUs can be compared.

* `cpu_summary`: the CPU model and the features that decide TensorFlow's kernels (AVX2, AVX-512, VNNI, BF16, AMX)
  and whether oneDNN is on in this process.
* `fc_gemm_ceiling`: the fc model's matrix products alone, at their real shapes (batch 128: 8 forward, 8 weight
  gradients, 7 input gradients), compiled as the fc step is (XLA). Their time is the least an fc step can take,
  so images/s at that time is the fc model's ceiling, and the step's throughput is reported as a fraction of it.
* `matmul_rate`: GFLOP/s of a large square product, the rate the machine attains on friendly shapes.
* `training_flops_per_image`: the multiply-adds of one training step per image, counted from the layers of a
  built model (forward, weight gradients, input gradients; none into the pixels). With the attainable rate this
  gives the FLOP-based ceiling of a model (used for conv, whose kernels are not GEMMs at fixed shapes).
"""

import statistics
import time

BATCH = 128
FC_LAYERS = [(784, 500), (500, 500), (500, 200), (200, 4), (2, 200), (200, 500), (500, 500), (500, 784)]
WATCHED_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'avx_vnni', 'amx_tile')


def cpu_summary():
  """{'model': str, 'features': [watched flags present], 'onednn': bool} for this machine and process."""
  model, flags = 'unknown CPU', set()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        key, _, value = line.partition(':')
        if key.strip() == 'model name':
          model = value.strip()
        elif key.strip() == 'flags':
          flags = set(value.split())
  except OSError:
    pass
  return {'model': model, 'features': [flag for flag in WATCHED_FLAGS if flag in flags],
          'onednn': onednn_enabled()}


def onednn_enabled():
  from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own answer, after its CPU checks
  return bool(_pywrap_util_port.IsMklEnabled())


def median_seconds(fn, rounds=5, calls=10):
  fn()
  fn()  # compile, warm caches
  times = []
  for _ in range(rounds):
    started = time.perf_counter()
    for _ in range(calls):
      out = fn()
    _ = [o.numpy() for o in out] if isinstance(out, (list, tuple)) else out.numpy()
    times.append((time.perf_counter() - started) / calls)
  return statistics.median(times)


def fc_matmul_flops_per_image():
  forward = sum(i * o for i, o in FC_LAYERS)
  input_gradients = forward - FC_LAYERS[0][0] * FC_LAYERS[0][1]   # no gradient flows into the pixels
  return 2 * (2 * forward + input_gradients)                      # forward + weight gradients + input gradients


def fc_matmuls():
  """A compiled function running the fc step's 23 matrix products once, at their real shapes, under XLA."""
  import numpy as np
  import tensorflow as tf

  rng = np.random.default_rng(0)
  acts = [tf.constant(rng.random((BATCH, i), np.float32)) for i, _ in FC_LAYERS]     # layer inputs
  deltas = [tf.constant(rng.random((BATCH, o), np.float32)) for _, o in FC_LAYERS]   # output gradients
  weights = [tf.constant(rng.random((i, o), np.float32)) for i, o in FC_LAYERS]

  @tf.function(jit_compile=True)
  def matmuls():
    out = []
    for k, (a, d, w) in enumerate(zip(acts, deltas, weights)):
      out.append(tf.matmul(a, w))                            # forward      [B, out]
      out.append(tf.matmul(a, d, transpose_a=True))          # dW           [in, out]
      if k > 0:
        out.append(tf.matmul(d, w, transpose_b=True))        # dX           [B, in]
    return out

  return matmuls


def fc_gemm_ceiling(rounds=5):
  """(images/s the fc step's matmuls alone allow, their GFLOP/s) at batch 128, under XLA."""
  seconds = median_seconds(fc_matmuls(), rounds)
  return BATCH / seconds, fc_matmul_flops_per_image() * BATCH / seconds / 1e9


def matmul_rate(size=1024, rounds=5):
  """GFLOP/s of one size^3 float32 product."""
  import tensorflow as tf

  a = tf.random.normal([size, size], seed=2)
  product = tf.function(lambda: tf.matmul(a, a))
  return 2 * size ** 3 / median_seconds(product, rounds) / 1e9


def training_flops_per_image(model):
  """Multiply-add FLOPs of one training step per image, from the Dense/Conv2D/Conv2DTranspose layers."""
  import keras

  total = 0
  first = True
  for network in (model.encoder, model.decoder):
    for layer in network.layers:
      if isinstance(layer, keras.layers.Dense):
        forward = 2 * layer.input.shape[-1] * layer.units
      elif isinstance(layer, keras.layers.Conv2DTranspose):
        _, height, width, channels = layer.input.shape
        forward = 2 * height * width * channels * layer.filters * layer.kernel_size[0] * layer.kernel_size[1]
      elif isinstance(layer, keras.layers.Conv2D):
        _, height, width, filters = layer.output.shape
        channels = layer.input.shape[-1]
        forward = 2 * height * width * channels * filters * layer.kernel_size[0] * layer.kernel_size[1]
      else:
        continue
      total += forward * (2 if first else 3)  # forward, weight gradient, and input gradient but into pixels
      first = False
  return total
