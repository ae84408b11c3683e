"""Runs the `main` of run.py (or of `python -m vae.commands.explore`, ...) on many command lines, in the test process.

    many_mains('run', [['--latent_dim=0'], ['--epochs=0', '--output_dir=/tmp/x']])

returns [[exit status, stderr, stdout], ...], one per command line, in order. A command line may also be
{"module": "vae.commands.explore", "argv": [...]}: that module's main instead. Each command line goes through the
same `main(argv)` as from a shell (vae/commands/cli.py parses it afresh each time, installs the stop signals'
handlers and restores them), and what a process keeps between command lines is reset before each one, as a fresh
process would have it: vae/data.py's verified files, and the networks and modules a --network_module registered
(and after the last, so that the tests that follow see only the built-in networks). A command's stderr holds what
it wrote to Python's sys.stderr and then what native code wrote to descriptor 2.

In the test process rather than in a process of its own: a command line costs only its own work, not a Python and
TensorFlow start-up. What needs a fresh process (TensorFlow's own start-up lines, a signal, an environment
variable read at start-up, the checks made before TensorFlow is imported) is tested with run.py as a subprocess
(tests/test_run.py, tests/test_your_own.py, tests/test_cli.py); tests/test_interrupt.py runs its stop signals' command
lines one after another through this module in a process of their own.
"""

import contextlib
import importlib
import io
import os
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def many_mains(module_name, command_lines):
  from vae import data, networks
  from vae.commands.quiet import import_tensorflow
  from vae.run import user_networks
  # TensorFlow's start-up first, outside any command line: whatever lines a build prints as it loads (a CUDA
  # build's, say) belong to no command.
  import_tensorflow()
  built_in = dict(networks.ENCODERS), dict(networks.DECODERS)

  def forget_what_a_process_would_not_know():
    data.forget_verified_files()
    for _, name in user_networks._loaded.values():
      sys.modules.pop(name, None)
    user_networks._loaded.clear()
    for registry, names in zip((networks.ENCODERS, networks.DECODERS), built_in):
      registry.clear()
      registry.update(names)

  argv = sys.argv
  results = []
  try:
    for arguments in command_lines:
      forget_what_a_process_would_not_know()
      name = module_name
      if isinstance(arguments, dict):
        name, arguments = arguments['module'], arguments['argv']
      program = os.path.join(REPO_ROOT, 'run.py') if name == 'run' else name
      sys.argv = [program]
      module = importlib.import_module(name)
      stderr, stdout = io.StringIO(), io.StringIO()
      with tempfile.TemporaryFile() as native, contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        real_stderr = os.dup(2)
        os.dup2(native.fileno(), 2)
        try:
          status = module.main([program] + arguments)
        except SystemExit as e:
          status = e.code
        finally:
          os.dup2(real_stderr, 2)
          os.close(real_stderr)
        native.seek(0)
        native_lines = native.read().decode('utf-8', 'replace')
      results.append([status, stderr.getvalue() + native_lines, stdout.getvalue()])
  finally:
    sys.argv = argv
    forget_what_a_process_would_not_know()
  return results
