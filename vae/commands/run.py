r"""`python run.py` (or `vae-run`): train a variational autoencoder, or resume its run, then estimate its test
log-likelihood; `--eval_only` re-estimates a trained run.

The flags are defined here from the settings declared in vae/run/config.py (name, default, help, rules), on this
command's own vae/commands/cli.py `Command`; the package's functions take explicit arguments. Every check that
needs no TensorFlow runs before TensorFlow starts, so a bad command line ends at once with one `error:` line.
"""

import sys

from absl import flags

from vae import data, networks
from vae.commands import cli
from vae.commands.errors import fail
from vae.run.config import SETTINGS, Config, define_flags, problem

COMMAND = cli.Command('python run.py', 'Train a variational autoencoder (or resume its run), then estimate its '
                      'test log-likelihood; --eval_only re-estimates a trained run.', script='vae-run')
define_flags(COMMAND.flags)  # one flag per setting of vae/run/config.py, with its default and help
flags.DEFINE_boolean('eval_only', False,
                     'Do not train: restore the run in --output_dir (its own saved flags define the model and the '
                     'data set) and re-estimate its test ELBO and log-likelihood with --eval_k.',
                     flag_values=COMMAND.flags)


def config_from_flags(flag_values):
  """The `Config` the flags describe, with --data_dir resolved for --dataset unless it was given."""
  values = {setting.name: flag_values[setting.name].value for setting in SETTINGS}
  given = values['data_dir'] if cli.was_given(flag_values, 'data_dir') else None
  from vae.run.user_networks import resolve
  return Config(**dict(values, data_dir=data.resolve_data_dir(values['dataset'], given),
                       network_module=resolve(values['network_module'])))


def flag_problem(flag_values, config):
  """The first problem with the flags that needs no TensorFlow (nor the data set's files), as one line, or None."""
  if flag_values.eval_only and flag_values.fresh:
    return '--eval_only evaluates the run in --output_dir and --fresh deletes it; pass one of them'
  if flag_values.eval_only:
    return None  # the run's own flags.json defines the model
  if config.dataset == data.FOLDER and not cli.was_given(flag_values, 'data_dir'):
    return '--dataset=folder needs --data_dir=DIR, the folder that holds your train/ and test/ image folders'
  return problem(config) or (architecture_problem(config) if config.dataset in data.IDX_NAMES else None)


def architecture_problem(config):
  """Whether the architectures take the data set's images (known from its metadata, before any work)."""
  image_shape, _ = data.describe(config.dataset, config.data_dir)
  for which in ('encoder', 'decoder'):
    architecture = getattr(config, f'{which}_architecture')
    misfit = networks.shape_problem(which, architecture, image_shape)
    if misfit:
      return f'--{which}_architecture={architecture} does not fit --dataset={config.dataset}: {misfit}'
  return None


def _saved_module_hint(config):
  """For a name no module registered: the module the run in --output_dir was made with, if it names one."""
  import json
  import os
  try:
    with open(os.path.join(config.output_dir, 'flags.json'), encoding='utf-8') as f:
      saved = json.load(f)
  except (OSError, ValueError):
    return ''
  module = saved.get('network_module') if isinstance(saved, dict) else None
  if not module or module == config.network_module:
    return ''
  return f' (the run in {config.output_dir} was made with --network_module={module}: pass it again to resume it)'


def train_or_evaluate(flag_values, arguments):
  """The body of `python run.py`; returns the exit status (a VAEError ends it with its line, vae/commands/cli.py)."""
  del arguments
  config = config_from_flags(flag_values)
  from vae.commands.quiet import import_tensorflow
  if config.network_module and not flag_values.eval_only:
    # A module of the user's own registers their networks before the names are checked; it may import Keras, so
    # TensorFlow starts first, quietly (vae/commands/quiet.py).
    import_tensorflow()
    from vae.run import user_networks
    user_networks.load(config.network_module)
  line = flag_problem(flag_values, config)
  if line:
    return fail(line + (_saved_module_hint(config) if 'is not a registered' in line else ''))

  # Only now TensorFlow, through vae/commands/quiet.py, so that its C++ start-up lines stay off the terminal.
  tf = import_tensorflow()

  if flag_values.eval_only:
    from vae.run.record import evaluate_saved_run
    evaluate_saved_run(config.output_dir, config.eval_k,
                       data_dir=flag_values.data_dir if cli.was_given(flag_values, 'data_dir') else None)
    return 0
  if config.dataset not in data.IDX_NAMES + (data.FOLDER,):  # TFDS: its metadata needs tensorflow-datasets
    line = architecture_problem(config)
    if line:
      return fail(line)
  from vae.run.epochs import start_or_resume
  # Same seed and flags, same numbers: deterministic kernels for the whole process (on CPU this costs little).
  tf.config.experimental.enable_op_determinism()
  start_or_resume(config, flag_values=dict(flag_values.flag_values_dict(), data_dir=config.data_dir,
                                           network_module=config.network_module))
  return 0


def main(argv=None):
  return COMMAND.main(train_or_evaluate, sys.argv if argv is None else argv)
