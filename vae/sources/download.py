"""Fetch a file from public mirrors, verified, atomically.

Mirrors are tried in turn; each file is checked against its published SHA-256 checksum and written through a
temporary file that is renamed onto the final name only once the checksum matches, so an interrupted or
tampered download never leaves a file that looks complete. When every mirror fails, `summarize` turns the
failures into one short account: each distinct reason once, with the mirrors that gave it.
"""

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request

from vae.commands.errors import DownloadError
from vae.run.fileio import temp_file_beside

def download(file_name, data_dir, mirrors, sha256, timeout=30.0):
  """Downloads `file_name` (e.g. 'train-images-idx3-ubyte.gz') into `data_dir`, verified and atomically.

  Mirrors are tried in turn; a mirror that fails (HTTP error, connection error, truncated body, wrong checksum)
  is reported and the next one is tried. The bytes go to a temporary file in `data_dir` that is renamed onto the
  final name only after the checksum matches, so no partial or unverified file is ever left behind.

  Args:
    file_name: the file to fetch, relative to each mirror URL.
    data_dir: an existing directory.
    mirrors: base URLs ending in '/'. Only https:// is accepted, except plain http to the loopback interface,
      which the tests use.
    sha256: the expected hex digest of the file (the published checksum, see vae/data.py).
    timeout: seconds to wait on a silent connection.

  Returns:
    The path of the verified file.

  Raises:
    DownloadError: no mirror produced a verified file. The message names every mirror tried and why it failed.
  """
  expected = sha256.lower()
  target = os.path.join(data_dir, file_name)
  failures = []
  for mirror in mirrors:
    url = urllib.parse.urljoin(mirror, file_name)
    try:
      _check_url(url)
      _fetch_verified(url, target, expected, timeout)
      return target
    except _MirrorFailure as e:
      failures.append((url, e))
  error = DownloadError(f'could not download {file_name}: ' + '; '.join(f'{url} ({e})' for url, e in failures))
  error.failures = failures
  raise error


class _MirrorFailure(Exception):
  """Why one mirror did not deliver a file: `reason` is the same for the same fault on every file."""

  def __init__(self, reason, detail=''):
    super().__init__(reason + (f' {detail}' if detail else ''))
    self.reason = reason


def _check_url(url):
  parts = urllib.parse.urlsplit(url)
  loopback = parts.hostname in ('localhost', '127.0.0.1', '::1')
  if parts.scheme != 'https' and not (parts.scheme == 'http' and loopback):
    raise _MirrorFailure('refused: only https:// mirrors are used')


def _fetch_verified(url, target, expected_sha256, timeout):
  try:
    tmp = temp_file_beside(target, suffix='.part')
  except OSError as e:
    raise _MirrorFailure(f'cannot write into {os.path.dirname(target) or "."}: {e.strerror or e}') from None
  try:
    digest = hashlib.sha256()
    received = 0
    with open(tmp, 'wb') as out:
      try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
          declared = response.headers.get('Content-Length')
          while True:
            chunk = response.read(1 << 16)
            if not chunk:
              break
            digest.update(chunk)
            out.write(chunk)
            received += len(chunk)
      except urllib.error.HTTPError as e:
        raise _MirrorFailure(f'HTTP {e.code}') from None
      except urllib.error.URLError as e:
        reason = e.reason.strerror if isinstance(e.reason, OSError) and e.reason.strerror else e.reason
        raise _MirrorFailure(f'unreachable: {reason}') from None
      except (OSError, ValueError) as e:  # timeouts, resets, http.client.IncompleteRead
        raise _MirrorFailure(f'connection failed: {e.__class__.__name__}: {e}') from None
      if declared is not None and declared.isdigit() and received != int(declared):
        raise _MirrorFailure('connection closed early', f'after {received} of {declared} bytes')
      if digest.hexdigest() != expected_sha256:
        raise _MirrorFailure('checksum mismatch, file discarded')
      out.flush()
      os.fsync(out.fileno())
    os.replace(tmp, target)
  except BaseException:
    try:
      os.remove(tmp)
    except OSError:
      pass
    raise


def summarize(failures):
  """[(url, _MirrorFailure)] -> a short account: each distinct reason once, with the mirrors that gave it."""
  hosts_by_reason = {}
  for url, failure in failures:
    hosts = hosts_by_reason.setdefault(failure.reason, [])
    host = urllib.parse.urlsplit(url).netloc
    if host not in hosts:
      hosts.append(host)
  reasons = list(hosts_by_reason)
  if len(reasons) == 1 and reasons[0].startswith('unreachable: '):
    return f'no mirror could be reached ({reasons[0][len("unreachable: "):]})'
  return 'no mirror delivered it (' + '; '.join(f'{reason} from {", ".join(hosts)}'
                                                 for reason, hosts in hosts_by_reason.items()) + ')'

