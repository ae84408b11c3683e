"""Where the project installs and runs: the Pythons pip accepts it on, and the one line on other systems.

pyproject.toml's `requires-python` is what makes `pip install -r requirements.txt` stop on an unsupported Python
with one line that names the supported range, before it looks for a single wheel. pip checks it against the
Python a command runs on, and `pip download --python-version V` runs the very same check for a Python V this
machine does not have; so these tests show the line a user of Python 3.10 or 3.14 gets, offline (the project's
metadata is prepared with the installed setuptools, from a copy of pyproject.toml).
"""

import os
import subprocess
import sys
import tomllib

from vae import cli
from conftest import REPO_ROOT

with open(os.path.join(REPO_ROOT, 'pyproject.toml'), 'rb') as f:
  PROJECT = tomllib.load(f)['project']


def _pip_download_for(python_version, project_dir, dest):
  """pip, offline, preparing the project for a Python `python_version` (its metadata only: no dependency)."""
  env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_NO_INPUT='1')
  return subprocess.Popen(
      [sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-index', '--no-build-isolation',
       '--python-version', python_version, '--dest', dest, project_dir],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_pip_stops_on_an_unsupported_python_with_one_line_naming_the_supported_ones(tmp_path):
  project = tmp_path / 'project'
  (project / 'vae').mkdir(parents=True)
  (project / 'vae' / '__init__.py').write_text('')
  (project / 'pyproject.toml').write_bytes(open(os.path.join(REPO_ROOT, 'pyproject.toml'), 'rb').read())
  versions = ('3.10', '3.11', '3.13', '3.14')
  pips = {v: _pip_download_for(v, str(project), str(tmp_path / f'dest-{v}')) for v in versions}
  outputs = {v: pip.communicate(timeout=300)[0] for v, pip in pips.items()}
  for version in ('3.11', '3.13'):
    assert pips[version].returncode == 0, outputs[version]
  for version in ('3.10', '3.14'):
    assert pips[version].returncode != 0, outputs[version]
    last = outputs[version].strip().splitlines()[-1]
    assert last.startswith(f"ERROR: Package '{PROJECT['name']}' requires a different Python: {version}.0 not in "), \
        outputs[version]
    assert '>=3.11' in last and '<3.14' in last, last  # the supported range, as requires-python states it
  assert PROJECT['requires-python'] == '>=3.11,<3.14'


def test_requirements_txt_installs_the_project_whose_metadata_lists_the_dependencies():
  lines = [line.strip() for line in open(os.path.join(REPO_ROOT, 'requirements.txt'), encoding='utf-8')
           if line.strip() and not line.startswith('#')]
  assert lines == ['-e .[test]']
  names = [dependency.split('==')[0] for dependency in PROJECT['dependencies']]
  for package in ('tensorflow-cpu', 'tensorflow', 'tensorflow-datasets', 'numpy', 'matplotlib', 'imageio',
                  'absl-py'):
    assert package in names, package
  assert all('==' in dependency for dependency in PROJECT['dependencies'] + PROJECT['optional-dependencies']['test'])


def test_every_command_on_native_windows_ends_with_one_line(monkeypatch, capsys):
  ran = []
  command = cli.Command('python run.py', 'a command')
  monkeypatch.setattr(cli.os, 'name', 'nt')
  status = command.main(lambda flag_values, arguments: ran.append(1), ['run.py'])
  monkeypatch.undo()
  assert status == 1 and ran == []
  assert capsys.readouterr().err == ('error: python run.py runs on Linux and macOS; native Windows is not '
                                     'supported (a run needs POSIX file locks and signals)\n')
