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

The flags are defined here from the settings declared in vae/config.py (name, default, help, rules), on this
command's own vae/cli.py `Command`; the package's functions take explicit arguments.
"""

import sys

from absl import flags

from vae import cli, data
from vae.config import SETTINGS, Config, define_flags, problem, shape_problem
from vae.errors import fail

COMMAND = cli.Command('python run.py', 'Train a variational autoencoder (or resume its run), then estimate its '
                      'test log-likelihood; --eval_only re-estimates a trained run.')
define_flags(COMMAND.flags)  # one flag per setting of vae/config.py, with its default and help
flags.DEFINE_boolean('eval_only', False,
                     'Do not train: restore the run in --output_dir (its own saved flags define the model and the '
                     'data set) and re-estimate its test ELBO and log-likelihood with --eval_k.',
                     flag_values=COMMAND.flags)


def config_from_flags(flag_values):
  """The `Config` the flags describe, with --data_dir resolved for --dataset unless it was given."""
  values = {setting.name: flag_values[setting.name].value for setting in SETTINGS}
  given = values['data_dir'] if cli.was_given(flag_values, 'data_dir') else None
  return Config(**dict(values, data_dir=data.resolve_data_dir(values['dataset'], given)))


def flag_problem(flag_values, config):
  """The first problem with the flags that needs no TensorFlow (nor the data set's files), as one line, or None."""
  if flag_values.eval_only and flag_values.fresh:
    return '--eval_only evaluates the run in --output_dir and --fresh deletes it; pass one of them'
  if flag_values.eval_only:
    return None  # the run's own flags.json defines the model
  return problem(config) or (architecture_problem(config) if config.dataset in data.IDX_NAMES else None)


def architecture_problem(config):
  """Whether the architectures take the data set's images (known from its metadata, before any work)."""
  image_shape, _ = data.describe(config.dataset, config.data_dir)
  for which in ('encoder', 'decoder'):
    architecture = getattr(config, f'{which}_architecture')
    misfit = shape_problem(architecture, image_shape)
    if misfit:
      return f'--{which}_architecture={architecture} does not fit --dataset={config.dataset}: {misfit}'
  return None


def train_or_evaluate(flag_values, arguments):
  """The body of `python run.py`; returns the exit status (a VAEError ends it with its line, vae/cli.py)."""
  del arguments
  config = config_from_flags(flag_values)
  line = flag_problem(flag_values, config)
  if line:
    return fail(line)

  # Only now TensorFlow, through vae.quiet, so that its C++ start-up lines stay off the terminal.
  from vae.quiet import import_tensorflow
  import_tensorflow()
  from vae.loop import evaluate_saved_run, run_training

  if flag_values.eval_only:
    evaluate_saved_run(config.output_dir, config.eval_k,
                       data_dir=flag_values.data_dir if cli.was_given(flag_values, 'data_dir') else None)
    return 0
  if config.dataset not in data.IDX_NAMES:  # a TFDS data set: its metadata needs tensorflow-datasets
    line = architecture_problem(config)
    if line:
      return fail(line)
  run_training(config, flag_values=dict(flag_values.flag_values_dict(), data_dir=config.data_dir))
  return 0


def main(argv=None):
  return COMMAND.main(train_or_evaluate, sys.argv if argv is None else argv)


if __name__ == '__main__':
  sys.exit(main())
