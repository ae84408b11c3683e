"""Atomic file writes and the run lock.

A run can be killed at any instant (Ctrl-C, an out-of-memory kill, a full disk). To make sure a file on disk is
always either the old complete version or the new complete version, never half of one, every file this package
produces is written to a temporary file in the same directory and then moved over the target with `os.replace`,
which POSIX guarantees to be atomic within one file system.
"""

import contextlib
import os
import tempfile

from vae.commands.errors import OutputError


@contextlib.contextmanager
def atomic_path(path, suffix='.tmp'):
  """Yields a temporary path beside `path`; on success it is renamed onto `path`, on failure removed.

  Use it for writers that insist on opening the file themselves (matplotlib, imageio):

      with atomic_path('out/plot.png') as tmp:
        figure.savefig(tmp, format='png')
  """
  try:
    tmp = temp_file_beside(path, suffix)
  except OSError as e:
    raise OutputError(f'cannot write {path}: {e.strerror or e}') from None
  try:
    yield tmp
    os.replace(tmp, path)
  except OSError as e:
    _remove_quietly(tmp)
    raise OutputError(f'cannot write {path}: {e.strerror or e}') from None
  except BaseException:
    _remove_quietly(tmp)
    raise


def temp_file_beside(path, suffix='.tmp'):
  """Creates an empty, uniquely named hidden file in the directory of `path` and returns its name.

  Raises OSError if the directory cannot be written.
  """
  fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix=suffix,
                             dir=os.path.dirname(os.path.abspath(path)))
  os.close(fd)
  # mkstemp creates the file private (0600); give it the permissions an ordinary open() would have.
  os.chmod(tmp, 0o666 & ~_umask())
  return tmp


def write_bytes_atomic(path, data):
  """Writes `data` to `path` atomically (temporary file, fsync, rename)."""
  with atomic_path(path) as tmp:
    with open(tmp, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())


def write_text_atomic(path, text):
  write_bytes_atomic(path, text.encode('utf-8'))


def ensure_writable_dir(path, what='output directory'):
  """Creates `path` if needed and checks that files can be created in it; raises OutputError if not."""
  if os.path.exists(path) and not os.path.isdir(path):
    raise OutputError(f'{what} {path} is a file, not a directory')
  try:
    os.makedirs(path, exist_ok=True)
    # Creating a file is the only reliable test (permissions, read-only mounts, ACLs all show up here).
    fd, probe = tempfile.mkstemp(prefix='.write-test.', dir=path)
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    raise OutputError(f'{what} {path} cannot be written: {e.strerror or e}') from None


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask


def _remove_quietly(path):
  with contextlib.suppress(OSError):
    os.remove(path)


class RunLock:
  """An exclusive lock on an output directory, so that two runs never interleave checkpoints and frames.

  It is an flock on the empty file `<dir>/.lock`: the operating system drops it when the holding process exits,
  however it exits, so a crashed or killed run never leaves it stuck. --eval_only takes it too.
  """

  def __init__(self, directory):
    self.path = os.path.join(directory, '.lock')
    self.fd = None

  def __enter__(self):
    import fcntl
    try:
      self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise OutputError(f'cannot create {self.path}: {e.strerror or e}') from None
    try:
      fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      os.close(self.fd)
      self.fd = None
      raise OutputError(f'another run is using {os.path.dirname(self.path)}; wait for it to finish or choose '
                        f'another --output_dir') from None
    # Nothing is written into it: the flock is the lock, and a rerun on a finished run changes no file.
    return self

  def __exit__(self, *exc):
    if self.fd is not None:
      os.close(self.fd)  # closing releases the flock
      self.fd = None
