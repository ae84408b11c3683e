r"""Train a variational autoencoder on MNIST (or another image data set): the one entry point.

    python run.py                                      # the original defaults: fc/fc, latent_dim=2, 100 epochs
    python run.py --encoder_architecture=conv --decoder_architecture=conv
    python run.py --do_viz=False --data_dir=/data/mnist --output_dir=runs/headless
    python run.py --dataset=fashion_mnist --latent_dim=50 --binarize=dynamic --kl_warmup_steps=10000

Each epoch is `updates_per_epoch` Adam steps on minibatches of `batch_size` training images, followed by an
evaluation of the ELBO on all the test images (one fixed posterior sample per image), printed as
`elbo = -(rate + distortion)` in nats (see vae/model.py). With latent_dim == 2 and do_viz, each epoch also draws
a spread frame and a canvas frame (vae/viz.py), and the end of the run assembles them into spread.gif and
canvas.gif in the output directory.

Outputs in --output_dir: flags.json (this run's flags), metrics.csv (one row per epoch), checkpoints/ (the
same command resumes from them), tensorboard/, figs/<kind>/ (the frames), spread.gif and canvas.gif (or
samples.gif and reconstructions.gif when latent_dim > 2), loss_curve.png, export/encoder.keras and
export/decoder.keras, and evaluation.json (test ELBO, the importance-weighted log-likelihood estimate, active
units). `python -m vae.explore --output_dir=DIR` then draws samples, reconstructions and interpolations.

All flags are defined here, and only here; the package's functions take explicit arguments.
"""

import math
import sys

from absl import app
from absl import flags
from absl import logging

from vae.config import Config

DEFAULTS = Config()  # the defaults are written in vae/config.py, once

# The flags of the original script, with its defaults.
flags.DEFINE_integer('latent_dim', DEFAULTS.latent_dim,
                     'Size of the latent code z. With 2, --do_viz draws the latent space itself (spread and '
                     'canvas); with more, a PCA spread, prior samples and reconstructions.')
flags.DEFINE_integer('batch_size', DEFAULTS.batch_size, 'Training minibatch size.')
flags.DEFINE_string('encoder_architecture', DEFAULTS.encoder_architecture,
                    'Encoder: "fc" (any image shape) or "conv" (28x28 or 32x32 images, see --dataset). Any encoder '
                    'pairs with any decoder; see vae/networks.py to add one.')
flags.DEFINE_string('decoder_architecture', DEFAULTS.decoder_architecture, 'Decoder: "fc" or "conv", as the encoder.')
flags.DEFINE_integer('epochs', DEFAULTS.epochs,
                     'Number of epochs. An epoch is --updates_per_epoch steps, not a full pass over the data, as in '
                     'the original.')
flags.DEFINE_integer('updates_per_epoch', DEFAULTS.updates_per_epoch,
                     'Training steps per epoch; with --batch_size this sets how many images an epoch sees.')
flags.DEFINE_string('data_dir', DEFAULTS.data_dir,
                    'Where --dataset lives: the four IDX files (.gz or uncompressed) for mnist and fashion_mnist, '
                    'downloaded into it if missing; the TFDS data directory for other data sets. Default: ../mnist '
                    'for mnist, ../fashion_mnist for fashion_mnist, ../tensorflow_datasets for TFDS data sets.')
flags.DEFINE_boolean('do_viz', DEFAULTS.do_viz,
                     'Draw frames every epoch and gifs at the end: spread and canvas with --latent_dim=2, else a PCA '
                     'spread, samples and reconstructions.')
# Added: the original hard-coded these, or did not have them.
flags.DEFINE_string('dataset', DEFAULTS.dataset,
                    'mnist (the original), fashion_mnist, or any TensorFlow Datasets image data set with integer '
                    'labels (e.g. kmnist, emnist/letters, cifar10), read from --data_dir. The conv architectures '
                    'need 28x28 or 32x32 images.')
flags.DEFINE_float('learning_rate', DEFAULTS.learning_rate, 'Adam learning rate.')
flags.DEFINE_float('beta', DEFAULTS.beta,
                   'Weight of the rate (KL) in the training objective distortion + beta * rate: 1 is the ELBO, '
                   'other values the beta-VAE (Higgins et al. 2017). The reported test ELBO, rate, distortion and '
                   'log-likelihood are always the true ELBO terms. See --kl_warmup_steps.')
flags.DEFINE_integer('kl_warmup_steps', DEFAULTS.kl_warmup_steps,
                     'KL warm-up: the rate\'s weight rises linearly from 0 to --beta over this many training steps '
                     '(0: no warm-up). A function of the step, so --seed and resuming stay exact.')
flags.DEFINE_integer('seed', DEFAULTS.seed, 'Random seed: weights, minibatch order and all noise derive from it.')
flags.DEFINE_string('output_dir', DEFAULTS.output_dir,
                    'Where metrics, checkpoints, frames and gifs go. The default "." refreshes the top-level gifs '
                    'when run from the repository root, as the original did. A run finds its checkpoints here to '
                    'resume (see --fresh, --eval_only).')
flags.DEFINE_integer('eval_k', DEFAULTS.eval_k,
                     'Importance samples per test image for the log-likelihood estimate at the end (IWAE bound). '
                     'Papers use 5000; the cost grows linearly with k, so the default is modest: re-estimate with '
                     '--eval_only --eval_k=5000.')
flags.DEFINE_enum('binarize', DEFAULTS.binarize, ['none', 'dynamic', 'static'],
                  'Pixel targets: "none" uses grey levels as Bernoulli targets (the original); "dynamic" resamples '
                  'binary pixels at every use; "static" uses one fixed binarised copy seeded by --seed. Published '
                  'MNIST log-likelihoods use binarised data.')
flags.DEFINE_boolean('fresh', DEFAULTS.fresh,
                     'Start over in --output_dir, deleting its checkpoints, metrics and frames, instead of resuming.')
flags.DEFINE_boolean('eval_only', False,
                     'Do not train: restore the run in --output_dir (its own saved flags define the model and the '
                     'data set) and re-estimate its test ELBO and log-likelihood with --eval_k.')

FLAGS = flags.FLAGS

POSITIVE_INTEGER_FLAGS = ('latent_dim', 'batch_size', 'epochs', 'updates_per_epoch', 'eval_k')
NON_NEGATIVE_INTEGER_FLAGS = ('seed', 'kl_warmup_steps')


def validate_flags():
  """Checks the flags that need no imports; returns an error line or None."""
  for name in POSITIVE_INTEGER_FLAGS:
    if FLAGS[name].value < 1:
      return f'--{name} must be a positive integer, got {FLAGS[name].value}'
  for name in NON_NEGATIVE_INTEGER_FLAGS:
    if FLAGS[name].value < 0:
      return f'--{name} must be >= 0, got {FLAGS[name].value}'
  lr = FLAGS.learning_rate
  if not (lr > 0 and math.isfinite(lr)):
    return f'--learning_rate must be a positive finite number, got {lr}'
  if not (FLAGS.beta >= 0 and math.isfinite(FLAGS.beta)):
    return f'--beta must be a finite number >= 0, got {FLAGS.beta}'
  if FLAGS.eval_only and FLAGS.fresh:
    return '--eval_only evaluates the run in --output_dir and --fresh deletes it; pass one of them'
  return None


def run_flags():
  """This script's flags as {name: value}, for flags.json."""
  return {f.name: f.value for f in FLAGS.get_key_flags_for_module(sys.argv[0])}


def main(argv):
  # absl's INFO logging would interleave TensorFlow's checkpoint chatter with our progress lines.
  logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    return fail(f'unexpected arguments: {" ".join(argv[1:])} (flags look like --name=value)')
  problem = validate_flags()
  if problem:
    return fail(problem)

  # Imported only now, so that a mistyped flag is reported at once rather than after TensorFlow's start-up,
  # and through vae.quiet, so that TensorFlow's C++ start-up lines stay off the terminal.
  from vae.quiet import import_tensorflow
  import_tensorflow()
  from vae import datasets, networks
  from vae.errors import VAEError
  from vae.loop import Interrupted, evaluate_saved_run, train

  for which, registry in (('encoder', networks.ENCODERS), ('decoder', networks.DECODERS)):
    name = FLAGS[f'{which}_architecture'].value
    if name not in registry:
      return fail(f'--{which}_architecture must be one of {", ".join(sorted(registry))}, got {name!r}')
  data_dir = FLAGS.data_dir if FLAGS['data_dir'].present else datasets.default_data_dir(FLAGS.dataset)

  try:
    if FLAGS.eval_only:
      evaluate_saved_run(FLAGS.output_dir, FLAGS.eval_k, data_dir=FLAGS.data_dir if FLAGS['data_dir'].present else None)
      return 0
    # The data set's image shape decides which architectures fit: checked from its metadata, before any work.
    image_shape, _ = datasets.describe(FLAGS.dataset, data_dir)
    for which in ('encoder', 'decoder'):
      problem = networks.shape_problem(FLAGS[f'{which}_architecture'].value, image_shape)
      if problem:
        return fail(f'--{which}_architecture={FLAGS[f"{which}_architecture"].value} does not fit --dataset='
                    f'{FLAGS.dataset}: {problem}')
    config = Config(
        latent_dim=FLAGS.latent_dim, batch_size=FLAGS.batch_size,
        encoder_architecture=FLAGS.encoder_architecture, decoder_architecture=FLAGS.decoder_architecture,
        epochs=FLAGS.epochs, updates_per_epoch=FLAGS.updates_per_epoch, data_dir=data_dir,
        do_viz=FLAGS.do_viz, learning_rate=FLAGS.learning_rate, seed=FLAGS.seed, output_dir=FLAGS.output_dir,
        eval_k=FLAGS.eval_k, binarize=FLAGS.binarize, fresh=FLAGS.fresh, dataset=FLAGS.dataset, beta=FLAGS.beta,
        kl_warmup_steps=FLAGS.kl_warmup_steps)
    train(config, flag_values=dict(run_flags(), data_dir=data_dir))
  except Interrupted as e:
    return fail(str(e), status=130)
  except VAEError as e:
    return fail(str(e))
  except KeyboardInterrupt:  # outside the epoch loop: nothing to keep
    return fail('interrupted', status=130)
  return 0


def parse_flags(argv):
  """absl's parser, with its two-line complaint about a malformed flag turned into our one-line form."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    sys.exit(fail(f'{e} (see python run.py --helpshort)'))


def fail(message, status=1):
  print(f'error: {message}', file=sys.stderr)
  return status


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
