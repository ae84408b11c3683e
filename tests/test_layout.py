"""The layout is the architecture: the tutorial at vae/'s top, the machinery in its subpackages, each module one
job of at most 300 lines, and no import cycle between the package's modules, lazy imports included."""

import ast
import glob
import os
import subprocess
import sys

from conftest import REPO_ROOT

PACKAGE = os.path.join(REPO_ROOT, 'vae')
TUTORIAL = {'model', 'networks', 'objectives', 'train', 'evaluate', 'data', 'preprocess', 'viz'}


def _modules():
  """{'vae.run.epochs': path, ...} for every module of the package."""
  found = {}
  for path in glob.glob(os.path.join(PACKAGE, '**', '*.py'), recursive=True):
    name = os.path.relpath(path, REPO_ROOT)[:-3].replace(os.sep, '.')
    found[name[:-len('.__init__')] if name.endswith('.__init__') else name] = path
  return found


def _imports(path, modules):
  """The package's modules that `path` imports anywhere in it (at the top or inside a function)."""
  imported = set()
  for node in ast.walk(ast.parse(open(path, encoding='utf-8').read())):
    if isinstance(node, ast.Import):
      imported.update(alias.name for alias in node.names if alias.name in modules)
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('vae'):
      for alias in node.names:  # `from vae.run import keys` imports the module vae.run.keys
        full = f'{node.module}.{alias.name}'
        imported.add(full if full in modules else node.module)
  return imported


def test_the_top_of_the_package_is_the_tutorial_and_the_rest_is_in_subpackages():
  top = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(PACKAGE, '*.py'))} - {'__init__'}
  assert top == TUTORIAL
  subpackages = {d for d in os.listdir(PACKAGE) if os.path.isfile(os.path.join(PACKAGE, d, '__init__.py'))}
  assert subpackages == {'run', 'sources', 'commands'}


def test_no_module_is_longer_than_300_lines():
  lengths = {name: len(open(path, encoding='utf-8').read().splitlines()) for name, path in _modules().items()}
  assert {name: n for name, n in lengths.items() if n > 300} == {}


def test_no_import_cycle_lazy_imports_included():
  modules = _modules()
  graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
  # A package's __init__ runs before any of its modules: importing vae.run.x imports vae.run (and vae) first.
  cycles = []

  def visit(name, trail):
    for target in sorted(graph[name]):
      if target in trail:
        cycles.append(trail[trail.index(target):] + [target])
      elif target not in done:
        visit(target, trail + [target])
    done.add(name)

  done = set()
  for name in sorted(graph):
    if name not in done:
      visit(name, [name])
  assert cycles == []


def test_the_tutorial_imports_nothing_of_the_commands_but_their_errors():
  modules = _modules()
  for name in TUTORIAL:
    commands = {m for m in _imports(modules[f'vae.{name}'], modules) if m.startswith('vae.commands')}
    assert commands <= {'vae.commands.errors'}, (name, commands)



def test_pip_install_of_the_package_gives_the_four_commands_working_from_any_directory(tmp_path):
  # A plain (not editable) install, offline, with the build backend the test tools install: what `pip install .`
  # puts into an environment, here into a directory of its own that comes first on the path.
  site = tmp_path / 'site'
  install = subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--no-index',
                            '--no-build-isolation', '--target', str(site), REPO_ROOT],
                           capture_output=True, text=True)
  assert install.returncode == 0, install.stderr
  assert {'run', 'sources', 'commands', 'model.py'} <= set(os.listdir(site / 'vae'))
  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  env = dict(os.environ, PYTHONPATH=str(site))
  for script, program in (('vae-run', 'vae-run'), ('vae-plain-loop', 'vae-plain-loop'),
                          ('vae-explore', 'vae-explore'), ('vae-report', 'vae-report')):
    result = subprocess.run([str(site / 'bin' / script), '--help'], cwd=elsewhere, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0 and result.stdout.startswith(f'usage: {program} '), (script, result.stderr)
  # The package the commands run is the installed copy, not the clone.
  where = subprocess.run([sys.executable, '-c', 'import vae.commands.run as r; print(r.__file__)'], cwd=elsewhere,
                         env=env, capture_output=True, text=True)
  assert where.stdout.strip().startswith(str(site))
  refused = subprocess.run([str(site / 'bin' / 'vae-run'), '--epochs=0'], cwd=elsewhere, env=env,
                           capture_output=True, text=True)
  assert (refused.returncode, refused.stderr) == (1, 'error: --epochs must be a positive integer, got 0\n')
  assert os.listdir(elsewhere) == []
