"""The package's own exceptions.

Anything a user can cause (a bad flag, a broken data file, no network, a directory that cannot be written) is raised
as a `VAEError` whose message is one self-contained line: what went wrong and what to do about it. Every command's
line layer (vae/commands/cli.py) catches exactly this class, prints the message with `fail` and exits non-zero, so a
user never sees a traceback for a problem that is theirs to fix. Anything else that escapes is a bug in this package
and keeps its traceback.
"""


import sys


def fail(message, status=1):
  """How every entry point ends on a user's problem: `error: MESSAGE` on stderr; returns the exit status."""
  print(f'error: {message}', file=sys.stderr)
  return status


class VAEError(Exception):
  """A problem the user can fix; the message is one line meant to be printed as it is."""

  exit_status = 1  # what the command exits with after printing it


class DataError(VAEError):
  """A data file is missing, unreadable, truncated or not the IDX file it claims to be."""


class DownloadError(VAEError):
  """A data set's files (MNIST's, Fashion-MNIST's, or a TFDS set's) could not be downloaded."""


class OutputError(VAEError):
  """The output directory (or a file in it) cannot be written."""
