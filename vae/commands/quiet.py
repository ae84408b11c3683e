"""Import TensorFlow without its C++ start-up lines on the terminal.

While `import tensorflow` loads its shared libraries, each of two of them logs, through absl's C++ logging
before anything has initialised it, a banner such as

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1795691408.831808    2181 port.cc:153] oneDNN custom operations are on. ...

on every CPU where oneDNN is on (by default on CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX, or when
TF_ENABLE_ONEDNN_OPTS=1). TF_CPP_MIN_LOG_LEVEL, which governs TensorFlow's own logging once it is loaded, does
not reach these lines: they are written straight to file descriptor 2 by C++ code, where Python cannot
intercept them.

So, for the duration of the import only, descriptor 2 is pointed into a pipe, and a forked helper process copies
what arrives to the real stderr, dropping the absl-format lines below the level TF_CPP_MIN_LOG_LEVEL asks for
(I = 0, W = 1, E = 2, F = 3) and absl's one-line preamble. Everything else passes through unchanged, in order.
If TensorFlow crashes during the import, the kernel closes the pipe, the helper drains it and exits, so a crash
report is never swallowed. After the import, stderr is the real stderr again and TF_CPP_MIN_LOG_LEVEL (default 2
here: errors only) does the filtering, for TensorFlow's C++ logging and, set here to the same level, its Python
logger.
"""

import os
import re
import signal
import sys

_ABSL_PREAMBLE = b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR'
# absl's C++ log prefix: severity letter, MMDD, time (hh:mm:ss.us, or seconds since 1970 before
# absl is initialised), thread id, file:line]
_ABSL_LINE = re.compile(rb'^([IWEF])\d{4} [0-9:.]+ +\d+ [^ \]]+:\d+\] ')
_SEVERITY = {b'I': 0, b'W': 1, b'E': 2, b'F': 3}


def min_log_level():
  """TensorFlow's TF_CPP_MIN_LOG_LEVEL, set to 2 (errors only) unless the user chose a level."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  try:
    return int(os.environ['TF_CPP_MIN_LOG_LEVEL'])
  except ValueError:
    return 0


def keep_line(line, level):
  """Whether a line of C++ start-up output (bytes, without its newline) should reach the terminal."""
  if level >= 1 and line.rstrip(b'\r') == _ABSL_PREAMBLE:
    return False
  match = _ABSL_LINE.match(line)
  return match is None or _SEVERITY[match.group(1)] >= level


def filter_stream(read_fd, write_fd, level):
  """Copies lines from `read_fd` to `write_fd` until end of file, dropping those `keep_line` rejects."""
  pending = b''
  while True:
    chunk = os.read(read_fd, 1 << 16)
    if not chunk:
      break
    pending += chunk
    *lines, pending = pending.split(b'\n')
    kept = b''.join(line + b'\n' for line in lines if keep_line(line, level))
    if kept:
      os.write(write_fd, kept)
  if pending and keep_line(pending, level):
    os.write(write_fd, pending)


def import_tensorflow():
  """`import tensorflow`, with the C++ start-up lines below TF_CPP_MIN_LOG_LEVEL filtered out; returns it.

  TensorFlow's Python logger is set to the same level, so that its Python warnings (about a checkpoint's unused
  values, say) are held to the level its C++ lines are.
  """
  tensorflow = _import_tensorflow_filtered()
  tensorflow.get_logger().setLevel(_PYTHON_LEVELS.get(min_log_level(), 'ERROR'))
  return tensorflow


_PYTHON_LEVELS = {0: 'INFO', 1: 'WARNING', 2: 'ERROR', 3: 'CRITICAL'}


def _import_tensorflow_filtered():
  level = min_log_level()
  if 'tensorflow' in sys.modules or level < 1 or not hasattr(os, 'fork'):
    import tensorflow
    return tensorflow
  sys.stdout.flush()
  sys.stderr.flush()
  read_fd, write_fd = os.pipe()
  real_stderr = os.dup(2)
  helper = os.fork()
  if helper == 0:  # the helper: filter until the importer closes the pipe (or dies), then leave at once
    try:
      signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the importer's to handle
      os.close(write_fd)
      filter_stream(read_fd, real_stderr, level)
    finally:
      os._exit(0)  # no atexit handlers, no flushing of buffers copied from the parent
  os.close(read_fd)
  os.dup2(write_fd, 2)
  os.close(write_fd)
  try:
    import tensorflow
  finally:
    sys.stderr.flush()
    os.dup2(real_stderr, 2)  # the pipe's last write end closes: the helper reads to the end and exits
    os.close(real_stderr)
    os.waitpid(helper, 0)
  return tensorflow
