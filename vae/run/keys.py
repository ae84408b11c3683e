"""Every random stream of a run, named in one table, each keyed so that no two streams ever share numbers.

A run draws all its noise from *stateless* generators: a draw is a pure function of a key, so the same --seed
gives the same numbers, and a resumed run draws what an uninterrupted one would have drawn. TensorFlow's
stateless ops take a key of two int64 numbers; here it is

    key(seed, tag, counter) = [seed, tag * 2**40 + counter],   0 <= counter < 2**40

The first half is the seed alone and the second holds (tag, counter) in disjoint bit ranges, so two different
(seed, tag, counter) triples always give two different keys: seed s's stream can never be seed s+1's, and no
stream can run into another however long it gets. numpy draws use `numpy_generator`, whose seed sequence takes
the triple itself.

| tag | stream                 | counter                                             | drawn in      |
|-----|------------------------|-----------------------------------------------------|---------------|
| 1   | training noise eps     | the step ([B, d], or [k, B, d] with --train_k = k)  | run/engine.py |
| 2   | evaluation noise eps   | 0 (one draw per run)                                | evaluate.py   |
| 3   | IWAE samples           | chunk (image offset, sample)                        | evaluate.py   |
| 4   | dynamic binarisation   | the step                                            | run/engine.py |
| 5   | fixed binarised copies | 0 training set (--seed), 1 test set (seed 0 always) | preprocess.py |
| 6   | frame inputs           | 0 prior samples, 1 posterior                        | viz.py        |

Weight initialisation (Keras's seeded initialisers) and the minibatch order (tf.data's seeded shuffle) derive
from --seed through their own generators, which are separate from these.

One caveat: a stateless draw is a function of its key *and of where it runs*. Inside an XLA-compiled function
`tf.random.stateless_normal` returns other numbers for the same key than outside one. The training noise of
fc/fc runs is drawn inside the XLA-compiled steps and that of every other pair outside (vae/run/state.py's
`use_xla`), so a run, its reruns and its resumptions always draw the same numbers; the dynamic binarisation is
compiled on its own on both paths (engine.py's `bernoulli_pixels`), so its pixels do not depend on the path.
"""

import numpy as np

TRAIN_NOISE = 1
EVAL_NOISE = 2
IWAE_NOISE = 3
DYNAMIC_BINARIZATION = 4
STATIC_BINARIZATION = 5  # fixed binarised copies: the static training set, and the test set
FRAME_INPUTS = 6
TAGS = (TRAIN_NOISE, EVAL_NOISE, IWAE_NOISE, DYNAMIC_BINARIZATION, STATIC_BINARIZATION, FRAME_INPUTS)

COUNTER_BITS = 40


def key(seed, tag, counter=0):
  """The stateless key [seed, tag * 2**40 + counter] (int64 [2]); `counter` may be a scalar tensor."""
  import tensorflow as tf  # here, so that the table above can be read (and tested) without TensorFlow

  if isinstance(counter, (int, np.integer)) and not 0 <= counter < 2 ** COUNTER_BITS:
    raise ValueError(f'stream counter {counter} is outside [0, 2**{COUNTER_BITS})')
  return tf.stack([tf.constant(seed, tf.int64), tf.constant(tag << COUNTER_BITS, tf.int64) +
                   tf.cast(counter, tf.int64)])


def key_pair(seed, tag, counter=0):
  """The same key as plain Python integers, for tests and for callers without TensorFlow."""
  return (int(seed), (int(tag) << COUNTER_BITS) + int(counter))


def numpy_generator(seed, tag, counter=0):
  """A numpy Generator for the stream (seed, tag, counter)."""
  return np.random.default_rng([int(seed), int(tag), int(counter)])
