"""The one command-line layer (vae/commands/cli.py) as each of the four commands meets it, in this process: --help, a bad
flag, and the checks that must come before TensorFlow starts."""

import os
import re
import subprocess
import sys

import pytest

from vae.commands import cli, explore, plain_loop, report, run
from conftest import REPO_ROOT, user_env

COMMANDS = {'python run.py': run, 'python -m vae.commands.plain_loop': plain_loop, 'python -m vae.commands.explore': explore,
            'python -m vae.commands.report': report}


@pytest.mark.parametrize('program', sorted(COMMANDS))
def test_help_lists_the_commands_own_flags_and_names_no_other(program, capsys):
  module = COMMANDS[program]
  assert module.main([program, '--help']) == 0
  text = capsys.readouterr().out
  assert text.startswith(f'usage: {program} ')
  own = set(module.COMMAND.flags)
  listed = re.findall(r'^  --(\w+) \(default: ', text, flags=re.MULTILINE)
  assert sorted(listed) == sorted(own)
  mentioned = set(re.findall(r'--(\w+)', text)) - {'flag', 'help', 'flagfile'}
  assert mentioned <= own, mentioned - own  # no help text sends the user to a flag this command does not take


@pytest.mark.parametrize('program', sorted(COMMANDS))
def test_a_malformed_flag_is_one_line_naming_the_commands_help(program, capsys):
  assert COMMANDS[program].main([program, '--no_such_flag=1']) == 1
  assert capsys.readouterr().err == f"error: Unknown command line flag 'no_such_flag' (see {program} --help)\n"


def test_report_takes_directories_and_the_others_take_none(capsys):
  assert report.main(['python -m vae.commands.report', '--group_seeds=maybe', 'x']) == 1
  assert capsys.readouterr().err == ("error: flag --group_seeds=maybe: ('Non-boolean argument to boolean flag', "
                                     "'maybe') (see python -m vae.commands.report --help)\n")
  assert explore.main(['python -m vae.commands.explore', 'runs/x']) == 1
  assert capsys.readouterr().err == 'error: unexpected arguments: runs/x (flags look like --name=value)\n'


def test_checks_that_need_no_tensorflow_come_before_it():
  """Every refusal of this list is made without importing TensorFlow (nor Keras): a subprocess that would
  import it is stopped by a module that raises on import."""
  blocker = ('import sys\nclass Block:\n  def find_spec(self, name, *args):\n'
             '    if name.split(".")[0] in ("tensorflow", "keras"):\n      raise ImportError("imported " + name)\n'
             'sys.meta_path.insert(0, Block())\n')
  cases = [
      ('run', ['--encoder_architecture=foo'], '--encoder_architecture=foo is not a registered encoder: one of fc, conv'),
      ('run', ['--latent_dim=0'], '--latent_dim must be a positive integer, got 0'),
      ('run', ['--objective=iwae', '--beta=2'], '--objective=iwae trains the importance-weighted bound'),
      ('run', ['--encoder_architecture=conv', '--dataset=mnist', '--eval_only', '--fresh'], '--eval_only evaluates'),
      ('run', ['--likelihood=continuous_bernoulli', '--binarize=static'], '--likelihood=continuous_bernoulli is a'),
      ('vae.commands.plain_loop', ['--steps=0'], '--steps must be a positive integer, got 0'),
      ('vae.commands.explore', ['--count=7'], '--count must be a positive multiple of 10, got 7'),
      ('vae.commands.report', [], 'name at least one run directory'),
  ]
  program = blocker + (
      'import json, sys, importlib, contextlib, io\nsys.path.insert(0, ".")\nout = []\n'
      'for module, arguments in json.loads(sys.argv[1]):\n'
      '  err = io.StringIO()\n'
      '  with contextlib.redirect_stderr(err):\n'
      '    status = importlib.import_module(module).main([module] + arguments)\n'
      '  out.append([status, err.getvalue()])\n'
      'print(json.dumps(out))\n')
  import json
  result = subprocess.run([sys.executable, '-c', program, json.dumps([[m, a] for m, a, _ in cases])], cwd=REPO_ROOT,
                          env=user_env(), capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  for (module, arguments, message), (status, stderr) in zip(cases, json.loads(result.stdout)):
    assert status == 1 and stderr.startswith(f'error: {message}') and stderr.count('\n') == 1, (arguments, stderr)


def test_was_given_tells_a_flag_on_the_command_line_from_its_default(capsys):
  seen = {}

  def body(flag_values, arguments):
    seen['given'] = cli.was_given(flag_values, 'data_dir')
    return 0

  assert run.COMMAND.main(body, ['run.py', '--data_dir=../mnist']) == 0 and seen['given']
  assert run.COMMAND.main(body, ['run.py']) == 0 and not seen['given']  # a fresh parse: the default again


def test_a_flag_file_gives_its_flags_and_a_later_flag_overrides_it(tmp_path, capsys):
  seen = {}

  def body(flag_values, arguments):
    seen.update(run.config_from_flags(flag_values).__dict__)
    return 0

  example = os.path.join(REPO_ROOT, 'examples', 'burda.flags')
  assert run.COMMAND.main(body, ['run.py', f'--flagfile={example}', '--train_k=5', '--objective=iwae']) == 0
  assert {k: seen[k] for k in ('latent_dim', 'binarize', 'updates_per_epoch', 'epochs', 'eval_k', 'do_viz')} == {
      'latent_dim': 50, 'binarize': 'dynamic', 'updates_per_epoch': 469, 'epochs': 200, 'eval_k': 5000,
      'do_viz': False}
  assert (seen['train_k'], seen['objective']) == (5, 'iwae')
  missing = tmp_path / 'missing.flags'
  assert run.COMMAND.main(body, ['run.py', f'--flagfile={missing}']) == 1
  assert capsys.readouterr().err == (f"error: Unable to open flagfile: [Errno 2] No such file or directory: "
                                     f"'{missing}' (see python run.py --help)\n")
