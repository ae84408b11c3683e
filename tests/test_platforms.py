"""Where the project installs and runs: the Pythons pip accepts it on, and the one line on other systems.

pyproject.toml's `requires-python` is what makes `pip install -r requirements.txt` stop on an unsupported Python
with one line that names the supported range, before it looks for a single wheel. pip checks it against the
Python a command runs on, and `pip download --python-version V` runs the very same check for a Python V this
machine does not have; so these tests show the line a user of Python 3.10 or 3.14 gets from the README's install,
offline (the project's metadata is prepared with the installed build backend, from a copy of pyproject.toml).
"""

import importlib.metadata
import os
import subprocess
import sys
import tomllib

import pytest

from conftest import REPO_ROOT

with open(os.path.join(REPO_ROOT, 'pyproject.toml'), 'rb') as f:
  PROJECT = tomllib.load(f)['project']


def _pip_download(python_version, directory, *arguments):
  """pip, offline, resolving `arguments` for a Python `python_version` in `directory` (nothing is installed)."""
  env = {name: value for name, value in os.environ.items() if not name.startswith('PIP_')}  # no user settings
  env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_NO_INPUT='1')
  return subprocess.Popen(
      [sys.executable, '-m', 'pip', 'download', '--no-index', '--no-build-isolation', '--only-binary=:all:',
       '--python-version', python_version, '--dest', os.path.join(directory, f'dest-{python_version}'),
       *arguments], cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _pip_version():
  try:
    return tuple(int(part) for part in importlib.metadata.version('pip').split('.')[:2])
  except (importlib.metadata.PackageNotFoundError, ValueError):
    return None


# pip checks Requires-Python before the dependencies from 25.1 on; an older pip (23.2 is what `python3 -m venv`
# gives Python 3.11 without --upgrade-deps) names the first pinned package it cannot find instead. The README's
# commands make their environment with --upgrade-deps; an environment of the user's own may hold an older pip.
OLD_PIP = pytest.mark.skipif((_pip_version() or (0, 0)) < (25, 1),
                             reason=f'pip {importlib.metadata.version("pip") if _pip_version() else "(none)"} checks '
                                    f'Requires-Python after the dependencies; the README\'s venv (--upgrade-deps) '
                                    f'has pip 25.1 or later, which prints the line this test checks')


@OLD_PIP
def test_the_install_stops_on_an_unsupported_python_with_one_line_naming_the_supported_ones(tmp_path):
  # A copy of what the install reads: requirements.txt, pyproject.toml and the package it names.
  (tmp_path / 'vae').mkdir()
  (tmp_path / 'vae' / '__init__.py').write_text('')
  for name in ('requirements.txt', 'pyproject.toml'):
    (tmp_path / name).write_bytes(open(os.path.join(REPO_ROOT, name), 'rb').read())
  # The README's install, -r requirements.txt with every dependency, for the Pythons it must refuse (offline no
  # dependency can be found, so only a check that comes first can end it), and the project alone for two it takes.
  refused = {v: _pip_download(v, str(tmp_path), '-r', 'requirements.txt') for v in ('3.10', '3.14')}
  taken = {v: _pip_download(v, str(tmp_path), '--no-deps', '.') for v in ('3.11', '3.13')}
  outputs = {v: pip.communicate(timeout=300)[0] for v, pip in {**refused, **taken}.items()}
  for version, pip in taken.items():
    assert pip.returncode == 0, outputs[version]
  for version, pip in refused.items():
    assert pip.returncode != 0, outputs[version]
    last = outputs[version].strip().splitlines()[-1]
    # pip 25.1 and later check Requires-Python first; the README's commands make the environment with
    # --upgrade-deps, so that an older bundled pip does not name the first pinned package it cannot find instead.
    assert last.startswith(f"ERROR: Package '{PROJECT['name']}' requires a different Python: {version}.0 not in "), \
        outputs[version]
    assert '>=3.11' in last and '<3.14' in last, last  # the supported range, as requires-python states it


def test_requirements_txt_installs_the_project_whose_metadata_lists_the_dependencies():
  lines = [line.strip() for line in open(os.path.join(REPO_ROOT, 'requirements.txt'), encoding='utf-8')
           if line.strip() and not line.startswith('#')]
  assert lines == ['-e .[test]']
  names = [dependency.split('==')[0] for dependency in PROJECT['dependencies']]
  for package in ('tensorflow-cpu', 'tensorflow', 'tensorflow-datasets', 'numpy', 'matplotlib', 'imageio',
                  'absl-py'):
    assert package in names, package
  assert all('==' in dependency for dependency in PROJECT['dependencies'] + PROJECT['optional-dependencies']['test'])


# Native Windows, as far as this machine can show it: no SIGHUP or SIGUSR1 in the signal module when vae/ is
# imported, and os.name 'nt' when the command runs (set only then: the standard library reads it at import).
AS_ON_WINDOWS = ('import os, runpy, signal, sys; del signal.SIGHUP, signal.SIGUSR1; '
                 'sys.path.insert(0, os.path.dirname(sys.argv[1])); '  # as `python run.py` puts its directory first
                 'run = runpy.run_path(sys.argv[1]); os.name = "nt"; sys.exit(run["main"](sys.argv[1:]))')


def test_run_py_on_native_windows_ends_with_one_line_and_writes_nothing(tmp_path):
  child = subprocess.run([sys.executable, '-c', AS_ON_WINDOWS, os.path.join(REPO_ROOT, 'run.py'), '--epochs=1'],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
  assert (child.returncode, child.stdout, child.stderr) == (
      1, '', 'error: python run.py runs on Linux and macOS; native Windows is not supported (a run needs POSIX '
             'file locks and signals)\n')
  assert os.listdir(tmp_path) == []
