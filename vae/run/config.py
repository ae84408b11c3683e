"""The settings of one run: each declared once, here, with its default, its help and its rules.

Every field of `Config` is one setting. Its metadata says everything else about it:

    help      the flag's help text (`python run.py --help`)
    resume    why a run may only be resumed with the same value, or None if it may change between two parts of a
              run; vae/run/rundir.py refuses a resume that changes one, and says why
    minimum   the smallest allowed value of a number, checked before any work
    maximum   the largest (what TensorFlow's int32 shapes, numpy's seeds or vae/run/keys.py's counters take)
    choices   the allowed values of a string with a fixed set of them

`problem` checks the rules that need nothing but the flags (before TensorFlow starts), `size_problem` those that
need the data set's size (before anything is written). `run.py` defines one absl flag per field from this, builds
the `Config` from the flags and checks the rules; the
package's functions take a `Config` (or explicit arguments) and never read flags. Adding a setting is adding one
field here, and then using it where it acts: the flag, its check, the resume check, its record in flags.json and
evaluation.json (the settings a resume must match) and the README's flag table (tests/test_docs.py compares it
with this file) follow from the field.
"""

import dataclasses
import math
import os

from vae import networks
from vae.objectives import OBJECTIVES

# The likelihoods of vae/model.py (its LIKELIHOODS, the same names), here so that --likelihood is checked before
# TensorFlow is imported.
LIKELIHOODS = ('bernoulli', 'continuous_bernoulli')

INT32_MAX = 2 ** 31 - 1
MAX_STEPS = 2 ** 40 - 1  # vae/run/keys.py keys a step's noise with a 40-bit counter


def setting(default, description, resume=None, minimum=None, choices=None, maximum=None):
  """One field of `Config`: its default, and the metadata described above (`description` becomes `help`).
  Integers default to at most INT32_MAX."""
  if maximum is None and isinstance(default, int) and not isinstance(default, bool):
    maximum = INT32_MAX
  return dataclasses.field(default=default, metadata={'help': description, 'resume': resume, 'minimum': minimum,
                                                       'choices': choices, 'maximum': maximum})


@dataclasses.dataclass(frozen=True)
class Config:
  # The flags of the original script, with its defaults.
  latent_dim: int = setting(
      2, 'Size of the latent code z. With 2, --do_viz draws the latent space itself (spread and canvas); with '
      'more, a PCA spread, prior samples and reconstructions.', resume='it sets the size of the networks\' weights', minimum=1)
  batch_size: int = setting(128, 'Training minibatch size.',
                               resume='the images and noise of every step depend on it', minimum=1)
  encoder_architecture: str = setting(
      'fc', 'Encoder: a name registered in vae/networks.py, built in "fc" (any image shape) or "conv" (28x28 or '
      '32x32 images, see --dataset), or one your --network_module registers. Any encoder pairs with any decoder.',
      resume='it is the encoder network')
  decoder_architecture: str = setting('fc', 'Decoder: "fc", "conv" or one of yours, as the encoder.',
                                      resume='it is the decoder network')
  epochs: int = setting(
      100, 'Number of epochs. An epoch is --updates_per_epoch steps, not a full pass over the data, as in the '
      'original. Raising it and rerunning continues a finished run.', minimum=1)
  updates_per_epoch: int = setting(
      100, 'Training steps per epoch; with --batch_size this sets how many images an epoch sees.',
      resume='an epoch ends, is evaluated and is checkpointed after every this many steps', minimum=1)
  data_dir: str = setting(
      '../mnist', 'Where --dataset lives: the four IDX files (.gz or uncompressed) for mnist and fashion_mnist, '
      'downloaded into it if missing; the TFDS data directory for other data sets. Default: ../mnist for mnist, '
      '../fashion_mnist for fashion_mnist, ../tensorflow_datasets for TFDS data sets.')
  do_viz: bool = setting(
      True, 'Draw frames every epoch and gifs at the end: spread and canvas with --latent_dim=2, else a PCA '
      'spread, samples and reconstructions.',
      resume='a gif needs a frame of every epoch, and a resumed run draws only the epochs it trains')
  # Added: the original hard-coded these, or did not have them.
  dataset: str = setting(
      'mnist', 'mnist (the original), fashion_mnist, any TensorFlow Datasets image data set with integer '
      'labels (e.g. kmnist, emnist/letters, cifar10), read from --data_dir, or "folder": images of your own in '
      '--data_dir\'s train/ and test/ folders, one subfolder per class (see --image_size). The conv '
      'architectures need 28x28 or 32x32 images.', resume='it is the data')
  image_size: str = setting(
      '', 'H,W: resize every image of --dataset=folder to H x W pixels (needed when they differ in size; by '
      'default they are used as they are).', resume='it is the data')
  learning_rate: float = setting(2e-4, 'Adam learning rate.', resume='it sets the size of every Adam step')
  beta: float = setting(
      1.0, 'Weight of the rate (KL) in the training objective distortion + beta * rate: 1 is the ELBO, other '
      'values the beta-VAE (Higgins et al. 2017). The reported test ELBO, rate, distortion and log-likelihood '
      'are always the true ELBO terms. See --kl_warmup_steps; --objective=iwae needs 1.',
      resume='it changes the objective trained')
  kl_warmup_steps: int = setting(
      0, 'KL warm-up: the rate\'s weight rises linearly from 0 to --beta over this many training steps (0: no '
      'warm-up). A function of the step number alone. --objective=iwae needs 0.',
      resume='it changes the objective trained', minimum=0)
  train_k: int = setting(
      1, 'Importance samples per training image (Burda et al. 2016). With --objective=elbo the ELBO\'s '
      'distortion is averaged over them; with --objective=iwae they form the bound L_k. 1 is the plain VAE. '
      'See vae/objectives.py.', resume='it changes the objective trained', minimum=1)
  objective: str = setting(
      'elbo', 'Training objective: ' + '; '.join(f'"{name}", {line}' for name, line in OBJECTIVES.items()) +
      ' (needs --beta=1 and no warm-up). See vae/objectives.py.', resume='it is the objective trained',
      choices=tuple(OBJECTIVES))
  seed: int = setting(0, 'Random seed: weights, minibatch order and all noise derive from it.',
                      resume='the initial weights and every random stream derive from it', minimum=0,
                      maximum=2 ** 32 - 1)
  output_dir: str = setting(
      '.', 'Where metrics, checkpoints, frames and gifs go. The default "." refreshes the top-level gifs when run '
      'from the repository root, as the original did. A run finds its checkpoints here to resume (see --fresh, '
      '--eval_only).')
  eval_k: int = setting(
      100, 'Importance samples per test image for the log-likelihood estimate at the end (IWAE bound). Papers '
      'use 5000; the cost grows linearly with k, so the default is modest: re-estimate with --eval_only '
      '--eval_k=5000.', minimum=1)
  binarize: str = setting(
      'none', 'Pixel targets: "none" uses grey levels as Bernoulli targets (the original); "dynamic" resamples '
      'binary pixels at every use; "static" uses one fixed binarised copy of the training set seeded by --seed. '
      'With either, the test set is binarised once, the same for every seed. Published MNIST log-likelihoods '
      'use binarised data.', resume='it is the training and test targets', choices=('none', 'dynamic', 'static'))
  likelihood: str = setting(
      'bernoulli', 'p(x|z) of each pixel: "bernoulli" (the original; with grey targets not a density, so its '
      'numbers compare only with this script\'s) or "continuous_bernoulli" (Loaiza-Ganem & Cunningham 2019), the '
      'normalised density on [0, 1] for grey levels; needs --binarize=none. The pictures show the likelihood\'s '
      'mean. See vae/model.py.', resume='it is the model\'s likelihood', choices=LIKELIHOODS)
  network_module: str = setting(
      '', 'A module of yours that registers encoders and decoders (vae.networks.register) for '
      '--encoder_architecture and --decoder_architecture: a path to a .py file, or a module importable from the '
      'working directory. Recorded with the run, so that resuming, --eval_only and vae-explore rebuild the same '
      'networks. See examples/residual_mlp.py.', resume='it defines the networks the names stand for')
  fresh: bool = setting(
      False, 'Start over in --output_dir, deleting its checkpoints, metrics and frames, instead of resuming.')


def _encodable(text):
  try:
    text.encode('utf-8')
  except UnicodeEncodeError:
    return False
  return True


SETTINGS = dataclasses.fields(Config)
RUN_SETTINGS = {f.name: f for f in SETTINGS}
RESUME_KEYS = tuple(f.name for f in SETTINGS if f.metadata['resume'])
RESUME_REASONS = {f.name: f.metadata['resume'] for f in SETTINGS if f.metadata['resume']}


def define_flags(flag_values, names=None, help_for=None):
  """One absl flag per setting (or per setting in `names`), with its default and help, in `flag_values`.

  `help_for`: {name: help} replacing a setting's help, for a command where the shared text would name flags it
  does not take (python -m vae.train).
  """
  from absl import flags  # here, so that Config can be used without absl

  help_for = help_for or {}
  for field in SETTINGS:
    if names is not None and field.name not in names:
      continue
    define = (flags.DEFINE_enum if field.metadata['choices'] else flags.DEFINE_boolean if field.type is bool else
              flags.DEFINE_integer if field.type is int else flags.DEFINE_float if field.type is float else
              flags.DEFINE_string)
    choices = [list(field.metadata['choices'])] if field.metadata['choices'] else []
    define(field.name, field.default, *choices, help_for.get(field.name, field.metadata['help']),
           flag_values=flag_values)


def problem(config):
  """The first rule `config` breaks, as one line, or None: minimums, choices, and combinations with no meaning."""
  for field in SETTINGS:
    value, minimum = getattr(config, field.name), field.metadata['minimum']
    if minimum is not None and value < minimum:
      return (f'--{field.name} must be a positive integer, got {value}' if minimum == 1 else
              f'--{field.name} must be >= {minimum}, got {value}')
    maximum = field.metadata['maximum']
    if maximum is not None and value > maximum:
      return f'--{field.name} must be at most {maximum}, got {value}'
    choices = field.metadata['choices']
    if choices and value not in choices:
      return f'--{field.name} must be one of {", ".join(choices)}, got {value!r}'
    if isinstance(value, str) and not _encodable(value):
      return f'--{field.name} {value.encode("utf-8", "surrogateescape")!r} is not UTF-8 text; choose a name that is'
  for which in ('encoder', 'decoder'):
    name, registry = getattr(config, f'{which}_architecture'), getattr(networks, f'{which.upper()}S')
    if name not in registry:
      mine = ('' if config.network_module else
              '; a network of your own is registered by the module --network_module names')
      return (f'--{which}_architecture={name} is not a registered {which}: one of {", ".join(registry)}'
              + (f' (with --network_module={config.network_module})' if config.network_module else '') + mine)
  if config.image_size:
    size = parse_image_size(config.image_size)
    if size is None:
      return f'--image_size must be two positive integers H,W (e.g. 28,28), got {config.image_size!r}'
    if config.dataset != 'folder':
      return f'--image_size resizes the images of --dataset=folder only; --dataset={config.dataset} has its own size'
  if config.epochs * config.updates_per_epoch > MAX_STEPS:
    return (f'--epochs times --updates_per_epoch must be at most {MAX_STEPS} training steps, got '
            f'{config.epochs * config.updates_per_epoch}')
  if not (config.learning_rate > 0 and math.isfinite(config.learning_rate)):
    return f'--learning_rate must be a positive finite number, got {config.learning_rate}'
  if not (config.beta >= 0 and math.isfinite(config.beta)):
    return f'--beta must be a finite number >= 0, got {config.beta}'
  if config.likelihood == 'continuous_bernoulli' and config.binarize != 'none':
    return (f'--likelihood=continuous_bernoulli is a density for grey levels; binary targets (--binarize='
            f'{config.binarize}) have the Bernoulli likelihood: pass --likelihood=bernoulli or --binarize=none')
  if config.objective == 'iwae' and (config.beta != 1.0 or config.kl_warmup_steps):
    return ('--objective=iwae trains the importance-weighted bound, which has no rate term to weigh: it needs '
            '--beta=1 and --kl_warmup_steps=0 (use --objective=elbo for a beta-VAE or a warm-up)')
  return None


def parse_image_size(text):
  """(H, W) of an --image_size value "H,W", or None if it is not two positive integers ('' is no resizing)."""
  parts = text.replace('x', ',').split(',')
  if len(parts) != 2 or not all(p.strip().isdigit() and 0 < int(p) <= 65536 for p in parts):
    return None
  return int(parts[0]), int(parts[1])


def size_problem(config, num_train, num_test, num_values, weights, row_values):
  """Why a run of `config` cannot fit this data set or this machine, as one line, or None. Checked once the data
  set's size is known and before anything is written.

  The memory is an estimate on the low side, from the built networks: `weights` (their number of parameters) with
  their gradients and Adam's two moments, the training set as uint8 codes, the test set as float32, and
  `row_values` (the values the layers of both networks produce for one image) for one training step (forward and
  backward), one evaluation batch and one chunk of the final estimate.
  """
  if config.batch_size > num_train:
    return (f'--batch_size={config.batch_size} is larger than the training set ({num_train:,} images); pass '
            f'--batch_size={num_train} or less')
  rows_per_step = config.batch_size * config.train_k
  activations = 3 * (rows_per_step + 2000 + 8000) * row_values
  needed = 4 * (4 * weights + activations) + num_train * num_values + 4 * num_test * num_values
  available = _physical_memory()
  if available and needed > available:
    return (f'this run needs at least {needed / 2 ** 30:.1f} GiB of memory (estimated from '
            f'--latent_dim={config.latent_dim}, '
            f'--batch_size={config.batch_size} and --train_k={config.train_k}), more than this machine\'s '
            f'{available / 2 ** 30:.1f} GiB')
  return None


def _physical_memory():
  try:
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  except (ValueError, OSError, AttributeError):
    return None
