r"""Train a variational autoencoder on MNIST (or another image data set): the one entry point.

    python run.py                                      # the original defaults: fc/fc, latent_dim=2, 100 epochs
    python run.py --encoder_architecture=conv --decoder_architecture=conv
    python run.py --do_viz=False --data_dir=/data/mnist --output_dir=runs/headless
    python run.py --dataset=fashion_mnist --latent_dim=50 --binarize=dynamic --kl_warmup_steps=10000

Each epoch is `updates_per_epoch` Adam steps on minibatches of `batch_size` training images, followed by an
evaluation of the ELBO on all the test images (one fixed posterior sample per image), printed with its two terms,
elbo = -(rate + distortion), in nats (see vae/model.py), and the number of active latent units:

    epoch 100/100 [##############################] 100/100  loss 142.94  2.8 s
      test elbo -143.76  rate 6.30  distortion 137.46  active units 2/2  (3.4 s)

With latent_dim == 2 and do_viz, each epoch also draws a spread frame and a canvas frame (vae/viz.py), and the end
of the run assembles them into spread.gif and canvas.gif in the output directory.

Outputs in --output_dir: flags.json (this run's flags), metrics.csv (one row per epoch), checkpoints/ (the
same command resumes from them), tensorboard/, figs/<kind>/ (the frames), spread.gif and canvas.gif (or
samples.gif and reconstructions.gif when latent_dim is not 2), loss_curve.png, export/encoder.keras and
export/decoder.keras, and evaluation.json (test ELBO, the importance-weighted log-likelihood estimate, active
units). `python -m vae.explore --output_dir=DIR` then draws samples, reconstructions and interpolations.

The flags are defined here from the settings declared in vae/config.py (name, default, help, rules), and only
here; the package's functions take explicit arguments.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from vae.config import SETTINGS, Config, define_flags, problem
from vae.errors import fail


# One flag per setting of vae/config.py, with its default and help, belonging to this script (as absl names it).
define_flags(flags.FLAGS, module_name=sys.argv[0] if __name__ == '__main__' else __name__)
flags.DEFINE_boolean('eval_only', False,
                     'Do not train: restore the run in --output_dir (its own saved flags define the model and the '
                     'data set) and re-estimate its test ELBO and log-likelihood with --eval_k.')

FLAGS = flags.FLAGS


def config_from_flags(**overrides):
  """The `Config` the flags describe."""
  return Config(**{**{setting.name: FLAGS[setting.name].value for setting in SETTINGS}, **overrides})


def validate_flags():
  """Checks the flags that need no imports; returns an error line or None."""
  if FLAGS.eval_only and FLAGS.fresh:
    return '--eval_only evaluates the run in --output_dir and --fresh deletes it; pass one of them'
  return problem(config_from_flags())


def run_flags():
  """This script's flags as {name: value}, for flags.json."""
  return {f.name: f.value for f in FLAGS.get_key_flags_for_module(sys.argv[0])}


def main(argv):
  # absl's INFO logging would interleave TensorFlow's checkpoint chatter with our progress lines.
  logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    return fail(f'unexpected arguments: {" ".join(argv[1:])} (flags look like --name=value)')
  flag_problem = validate_flags()
  if flag_problem:
    return fail(flag_problem)

  # Imported only now, so that a mistyped flag is reported at once rather than after TensorFlow's start-up,
  # and through vae.quiet, so that TensorFlow's C++ start-up lines stay off the terminal.
  from vae.quiet import import_tensorflow
  import_tensorflow()
  from vae import data, networks
  from vae.errors import VAEError
  from vae.loop import Interrupted, evaluate_saved_run, run_training

  for which, registry in (('encoder', networks.ENCODERS), ('decoder', networks.DECODERS)):
    name = FLAGS[f'{which}_architecture'].value
    if name not in registry:
      return fail(f'--{which}_architecture must be one of {", ".join(sorted(registry))}, got {name!r}')
  data_dir = FLAGS.data_dir if FLAGS['data_dir'].present else data.default_data_dir(FLAGS.dataset)

  try:
    if FLAGS.eval_only:
      evaluate_saved_run(FLAGS.output_dir, FLAGS.eval_k, data_dir=FLAGS.data_dir if FLAGS['data_dir'].present else None)
      return 0
    # The data set's image shape decides which architectures fit: checked from its metadata, before any work.
    image_shape, _ = data.describe(FLAGS.dataset, data_dir)
    for which in ('encoder', 'decoder'):
      misfit = networks.shape_problem(FLAGS[f'{which}_architecture'].value, image_shape)
      if misfit:
        return fail(f'--{which}_architecture={FLAGS[f"{which}_architecture"].value} does not fit --dataset='
                    f'{FLAGS.dataset}: {misfit}')
    run_training(config_from_flags(data_dir=data_dir), flag_values=dict(run_flags(), data_dir=data_dir))
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


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
