"""Networks of a user's own: the module --network_module names, imported before the names are checked, and the
check that a registered pair builds models with the inputs and outputs of vae/networks.py's contract.

A run records its --network_module in flags.json, so that resuming it, `--eval_only` and vae-explore import the
same module again; each problem with it is one line naming the module and what to do.
"""

import importlib
import importlib.util
import os
import sys
import traceback

from vae import networks
from vae.commands.errors import VAEError
from vae.preprocess import num_values

EXAMPLE = 'examples/residual_mlp.py'
_loaded = {}  # {module as given: (names it registered, its name in sys.modules)}: imported once per process


def resolve(spec, directory=None):
  """The module `spec` as flags.json records it: a .py path made absolute (against `directory`, default the working
  directory), a module name as given."""
  if spec and _is_path(spec):
    return os.path.abspath(os.path.join(directory or os.getcwd(), os.path.expanduser(spec)))
  return spec


def _is_path(spec):
  return spec.endswith('.py') or os.sep in spec or spec.startswith('.')


def load(spec, run_dir=None):
  """Imports the module `spec` (a .py path or a module importable from the working directory) and returns the
  names it registered. `run_dir`: the saved run whose flags.json names it, for the messages.

  Raises VAEError with one line: no such file or module, an import that fails, or a module that registers nothing.
  """
  if not spec:
    return []
  if spec in _loaded:
    return _loaded[spec][0]
  said = (f'the run in {run_dir} was trained with --network_module={spec}, which' if run_dir else
          f'--network_module={spec}')
  todo = '; put the module back where it was' if run_dir else ''
  before = {(which, name): network for which, registry in (('encoder', networks.ENCODERS),
                                                          ('decoder', networks.DECODERS))
            for name, network in registry.items()}
  try:
    module = _import(spec)
  except _NotFound as e:
    raise VAEError(f'{said} {e}{todo or f" (see {EXAMPLE})"}') from None
  except (Exception, SystemExit) as e:  # noqa: BLE001  (whatever the user's module raises: one line, theirs)
    raise VAEError(f'{said} failed to import: {type(e).__name__}: {_first_line(e)}{_where(e, spec)}; fix the '
                   f'module and run the same command again') from None
  registered = [name for which, registry in (('encoder', networks.ENCODERS), ('decoder', networks.DECODERS))
                for name, network in registry.items()
                if network.module == module.__name__ and before.get((which, name)) is not network]
  if not registered:
    raise VAEError(f'{said} registered no network: call vae.networks.register(name, encoder=..., decoder=...) in '
                   f'it (see {EXAMPLE})')
  _loaded[spec] = (sorted(set(registered)), module.__name__)
  return _loaded[spec][0]


class _NotFound(Exception):
  pass


def _import(spec):
  if _is_path(spec):
    if not os.path.isfile(spec):
      raise _NotFound('is not a file (give a path to a .py file, or a module importable from the working directory)')
    stem = os.path.splitext(os.path.basename(spec))[0]
    name = stem if stem.isidentifier() and stem not in sys.modules else f'vae_network_module_{len(sys.modules)}'
    loader_spec = importlib.util.spec_from_file_location(name, spec)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # as an import would, so that Keras finds the classes it registers
    try:
      loader_spec.loader.exec_module(module)
    except BaseException:
      del sys.modules[name]
      raise
    return module
  sys.path.insert(0, os.getcwd())  # importable from the working directory, as `python -m` would have it
  try:
    return importlib.import_module(spec)
  except ModuleNotFoundError as e:
    if e.name and (spec == e.name or spec.startswith(e.name + '.')):
      raise _NotFound(f'is no module importable from {os.getcwd()} (give a module name, or a path to a .py '
                      f'file)') from None
    raise
  finally:
    sys.path.remove(os.getcwd())


def _first_line(error):
  text = str(error).strip()
  return text.splitlines()[0][:300] if text else 'no message'


def _where(error, spec):
  """' (file:line)' of the innermost frame in the user's module, if the traceback has one."""
  frames = [f for f in traceback.extract_tb(error.__traceback__) if 'vae/run/user_networks.py' not in f.filename
            and '<frozen' not in f.filename]
  if frames:
    return f' (at {frames[-1].filename}:{frames[-1].lineno})'
  return ''


def _shape(tensor):
  return '[' + ', '.join('B' if i == 0 else str(n) for i, n in enumerate(tensor.shape)) + ']'


def check_pair(config, image_shape):
  """Builds the pair `config` names for `image_shape` and checks the contract of vae/networks.py on the models;
  returns (weights, values per image) of both networks together, for the memory estimate: what the builders
  declare, or counted on the built models. VAEError with one line if a model does not keep the contract."""
  import numpy as np

  pair = [getattr(networks, f'{which.upper()}S')[getattr(config, f'{which}_architecture')]
          for which in ('encoder', 'decoder')]
  declared = [network.size(config.latent_dim, tuple(image_shape)) if network.size else None for network in pair]
  if all(declared) and not any(network.module for network in pair):  # the built-in pairs: known to keep it
    return sum(s[0] for s in declared), sum(s[1] for s in declared)
  from vae.run.state import build_networks
  encoder, decoder = build_networks(config, image_shape)
  d, values = config.latent_dim, num_values(image_shape)
  for which, model, given, wants in (('encoder', encoder, values, '[mean, log_var], each [B, {d}]'),
                                     ('decoder', decoder, d, '[B, {values}] logits')):
    name = getattr(config, f'{which}_architecture')
    source = pair[0 if which == 'encoder' else 1].module
    contract = (f'the {which} {name!r} (from {source or "vae.networks"}) must take [B, {given}] and return '
                f'{wants.format(d=d, values=values)}')
    try:
      out = model(np.zeros((2, given), np.float32))
    except Exception as e:  # noqa: BLE001
      raise VAEError(f'{contract}; called on [2, {given}] it raised {type(e).__name__}: {_first_line(e)}') from None
    outputs = list(out) if isinstance(out, (list, tuple)) else [out]
    expected = [(2, d), (2, d)] if which == 'encoder' else [(2, values)]
    got = [tuple(o.shape) for o in outputs]
    if got != expected:
      raise VAEError(f'{contract}; it returns {", ".join(_shape(o) for o in outputs)}')
  if all(declared):
    return sum(s[0] for s in declared), sum(s[1] for s in declared)
  weights = sum(int(np.prod(w.shape)) for w in encoder.weights + decoder.weights)
  row_values = 0
  for model in (encoder, decoder):
    for layer in model.layers:
      try:
        outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        row_values += sum(int(np.prod(o.shape[1:])) for o in outputs)
      except (AttributeError, ValueError, TypeError):
        pass
  return weights, max(row_values, 2 * values + 2 * d)


def load_for_saved_run(saved, run_dir):
  """Imports the module a saved run's flags.json (`saved`) names, if any, and checks that its encoder and decoder
  names are registered; VAEError with one line if not."""
  spec = saved.get('network_module') or ''
  load(spec, run_dir)
  for which in ('encoder', 'decoder'):
    name = saved.get(f'{which}_architecture', 'fc')
    if name not in getattr(networks, f'{which.upper()}S'):
      source = f'--network_module={spec} no longer registers' if spec else 'no module registers'
      raise VAEError(f'the run in {run_dir} was trained with --{which}_architecture={name}, which {source}; restore '
                     f'the module that registered it')
