"""TensorFlow's C++ start-up lines are kept off the terminal; everything else, a crash above all, still shows."""

import os
import signal
import subprocess
import sys

import pytest

from vae.commands import quiet
from conftest import REPO_ROOT

PREAMBLE = 'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR'
ONEDNN_BANNER = ('I0000 00:00:1795691408.831808    2181 port.cc:153] oneDNN custom operations are on. You may see '
                 'slightly different numerical results due to floating-point round-off errors.')
WARNING_LINE = 'W0000 00:00:1795691408.831808    2181 some_op.cc:42] a warning'
ERROR_LINE = 'E1126 11:08:22.123456    2181 gpu_device.cc:2341] an error'


@pytest.mark.parametrize('line, level, kept', [
    (PREAMBLE, 2, False), (ONEDNN_BANNER, 2, False), (WARNING_LINE, 2, False), (ERROR_LINE, 2, True),
    (WARNING_LINE, 1, True), (ONEDNN_BANNER, 1, False), (PREAMBLE, 0, True), (ONEDNN_BANNER, 0, True),
    ('Traceback (most recent call last):', 2, True), ('Illegal instruction', 3, True),
])
def test_only_absl_lines_below_the_level_are_dropped(line, level, kept):
  assert quiet.keep_line(line.encode(), level) is kept


def fake_tensorflow(tmp_path, then):
  """A `tensorflow` package that logs like the real one to descriptor 2, then does `then`."""
  package = tmp_path / 'fake' / 'tensorflow'
  package.mkdir(parents=True)
  (package / '__init__.py').write_text(
      'import os\n'
      f'os.write(2, {(PREAMBLE + chr(10) + ONEDNN_BANNER + chr(10)).encode()!r})\n'
      "os.write(2, b'a real problem\\n')\n"
      'import logging\n'
      "get_logger = lambda: logging.getLogger('tensorflow')\n"  # as the real one: TensorFlow's Python logger
      f'{then}\n')
  return str(tmp_path / 'fake')


@pytest.mark.parametrize('then, status', [('', 0), ('os.abort()', -signal.SIGABRT)])
def test_the_import_drops_the_banner_and_keeps_the_rest_even_in_a_crash(tmp_path, then, status):
  code = (f'import sys; sys.path[:0] = [{fake_tensorflow(tmp_path, then)!r}, {REPO_ROOT!r}]; '
          'from vae.commands.quiet import import_tensorflow; tf = import_tensorflow(); '
          'print("imported, Python logger at", tf.get_logger().level, file=sys.stderr)')
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60, env=env)
  assert result.returncode == status
  # TF_CPP_MIN_LOG_LEVEL=2 (errors only) by default, for the Python logger too: logging.ERROR.
  expected = ['a real problem'] + (['imported, Python logger at 40'] if status == 0 else [])
  assert result.stderr.splitlines() == expected
