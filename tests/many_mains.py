"""Runs the `main` of run.py (or of `python -m vae.commands.explore`, ...) on many command lines in one process.

    python tests/many_mains.py run '[["--latent_dim=0"], ["--epochs=0", "--output_dir=/tmp/x"]]'

prints one JSON line: [[exit status, stderr, stdout], ...], one per command line, in order. A command line may
also be {"module": "vae.commands.explore", "argv": [...]}: that module's main, in the same process. Each command line goes
through the same `main(argv)` as from a shell (vae/commands/cli.py parses it afresh each time), and the caches a process
keeps between command lines (vae/data.py's verified files) are cleared in between, so a test can check many
command lines for the price of one Python and TensorFlow start-up, each as a fresh process would see it.
"""

import contextlib
import importlib
import io
import json
import os
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def main():
  module_name, command_lines = sys.argv[1], json.loads(sys.argv[2])
  program = os.path.join(REPO_ROOT, 'run.py') if module_name == 'run' else module_name
  sys.argv = [program]
  module = importlib.import_module(module_name)
  results = []
  from vae import data
  from vae.commands.quiet import import_tensorflow
  # TensorFlow's start-up first, outside any command line: whatever lines a build prints as it loads (a CUDA
  # build's, say) belong to no command, so each command line's stderr holds only what that command printed.
  import_tensorflow()
  from vae import networks
  from vae.run import user_networks
  built_in = dict(networks.ENCODERS), dict(networks.DECODERS)
  for arguments in command_lines:
    data.forget_verified_files()
    # The networks a --network_module registered, and the module itself, are forgotten too.
    for _, module_name in user_networks._loaded.values():
      sys.modules.pop(module_name, None)
    user_networks._loaded.clear()
    networks.ENCODERS.clear(), networks.ENCODERS.update(built_in[0])
    networks.DECODERS.clear(), networks.DECODERS.update(built_in[1])
    this_module, this_program = module, program
    if isinstance(arguments, dict):
      this_module, this_program = importlib.import_module(arguments['module']), arguments['module']
      arguments = arguments['argv']
    stderr, stdout = io.StringIO(), io.StringIO()
    # What C++ code writes to descriptor 2 (TensorFlow's own log lines) is caught too, after Python's lines.
    with tempfile.TemporaryFile() as native, contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
      real_stderr = os.dup(2)
      os.dup2(native.fileno(), 2)
      try:
        status = this_module.main([this_program] + arguments)
      except SystemExit as e:
        status = e.code
      finally:
        os.dup2(real_stderr, 2)
        os.close(real_stderr)
      native.seek(0)
      native_lines = native.read().decode('utf-8', 'replace')
    results.append([status, stderr.getvalue() + native_lines, stdout.getvalue()])
  print(json.dumps(results), file=sys.__stdout__)


if __name__ == '__main__':
  main()
