"""Infrastructure, skip on a first reading: find, download, validate and parse MNIST's four IDX files.

The IDX format (LeCun et al.) is a big-endian header followed by raw uint8 pixels:

    images: magic 0x00000803, int32 count, int32 rows, int32 cols, then count*rows*cols bytes
    labels: magic 0x00000801, int32 count,                          then count bytes (0..9)

`data_dir` holds the files either gzipped (`train-images-idx3-ubyte.gz`, as distributed) or uncompressed
(`train-images-idx3-ubyte`). Files already on disk are trusted only after their header has been checked against
their length: magic number, counts, 28x28 images, and exactly as many bytes as the header promises. This check
comes *before* any large allocation, so a corrupted header that claims billions of images fails at once.

Missing files are downloaded from public mirrors tried in turn, verified against their published SHA-256
checksums, and written atomically (temporary file, then rename), so an interrupted download never leaves a file
that looks complete.

Pixels become float32 intensities in [0, 1]; what the model makes of them is vae/inputs.py's business.

References:
  [1] Y. LeCun, C. Cortes, C. Burges. The MNIST database of handwritten digits.
      http://yann.lecun.com/exdb/mnist/
"""

import collections
import gzip
import hashlib
import os
import struct
import urllib.error
import urllib.parse
import urllib.request
import zlib

import numpy as np

from vae.errors import DataError, DownloadError
from vae.fileio import temp_file_beside
from vae.inputs import IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS

IMAGES_MAGIC = 0x00000803  # uint8 data, 3 dimensions
LABELS_MAGIC = 0x00000801  # uint8 data, 1 dimension

# Tried in this order. HTTPS only: the bytes are checked against the checksums below anyway, but there is no
# reason to fetch anything in clear text. CVDF is the mirror TensorFlow uses, ossci-datasets the one torchvision
# uses; LeCun's own page comes last because it has often been unavailable.
MIRRORS = (
    'https://storage.googleapis.com/cvdf-datasets/mnist/',
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'https://yann.lecun.com/exdb/mnist/',
)

# Published SHA-256 checksums of the distributed .gz files.
SHA256 = {
    'train-images-idx3-ubyte.gz': '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
    'train-labels-idx1-ubyte.gz': '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
    't10k-images-idx3-ubyte.gz': '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
    't10k-labels-idx1-ubyte.gz': 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
}

# (images file, labels file) for each split, without the .gz suffix.
SPLITS = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
FILE_NAMES = tuple(name for pair in SPLITS.values() for name in pair)

# DEFLATE cannot expand data by more than about 1032:1, so a .gz file whose header promises more than this many
# bytes per compressed byte is corrupt. Checking it first keeps a forged header from making us decompress (and
# allocate) gigabytes before noticing.
_MAX_DEFLATE_RATIO = 1032
_READ_CHUNK = 1 << 22  # 4 MiB

Dataset = collections.namedtuple('Dataset', ['train_images', 'train_labels', 'test_images', 'test_labels'])
Dataset.__doc__ = """MNIST in memory: images float32 [N, 784] in [0, 1], labels uint8 [N]."""


# ------------------------------------------------------------------------------------------------ IDX parsing


def read_idx(path, kind):
  """Reads one IDX file (gzipped if `path` ends in .gz) and returns its uint8 array.

  Args:
    path: the file.
    kind: 'images' (returns [N, 28, 28]) or 'labels' (returns [N], values 0..9).

  Raises:
    DataError: with a one-line explanation, for any file that is not a complete, valid IDX file of that kind.
  """
  if kind not in ('images', 'labels'):
    raise ValueError(f'kind must be "images" or "labels", got {kind!r}')
  name = os.path.basename(path)
  hint = f'delete {path} to download it again, or replace it with a good copy'
  try:
    compressed_size = os.path.getsize(path)
    if path.endswith('.gz'):
      with open(path, 'rb') as f:
        if f.read(2) != b'\x1f\x8b':
          raise DataError(f'{name} is not a gzip file; {hint}')
        if compressed_size < 18:
          raise DataError(f'{name} is truncated ({compressed_size} bytes); {hint}')
      with gzip.open(path, 'rb') as f:
        header = _read_header(f, name, kind, hint)
        expected = _expected_length(header, kind)
        if expected > _MAX_DEFLATE_RATIO * compressed_size + 1024:
          raise DataError(f'{name} has a corrupted header: it claims {header[1]:,} {kind}, far more than a '
                          f'{compressed_size:,}-byte file can hold; {hint}')
        payload = _read_exactly(f, expected - len(_pack(header)), name, hint)
    else:
      with open(path, 'rb') as f:
        header = _read_header(f, name, kind, hint)
        expected = _expected_length(header, kind)
        if compressed_size != expected:
          raise DataError(f'{name} is {compressed_size:,} bytes but its header says {header[1]:,} {kind} '
                          f'({expected:,} bytes): the file is truncated or corrupted; {hint}')
        payload = _read_exactly(f, expected - len(_pack(header)), name, hint)
  except PermissionError:
    raise DataError(f'cannot read {path}: permission denied') from None
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise DataError(f'{name} is truncated or corrupted ({e}); {hint}') from None
  except IsADirectoryError:
    raise DataError(f'{path} is a directory, not an IDX file') from None
  except OSError as e:
    raise DataError(f'cannot read {path}: {e.strerror or e}') from None

  array = np.frombuffer(payload, dtype=np.uint8)
  if kind == 'images':
    return array.reshape(header[1], IMAGE_SIZE, IMAGE_SIZE)
  if array.size and array.max() >= NUM_CLASSES:
    bad = int(np.argmax(array >= NUM_CLASSES))
    raise DataError(f'{name} holds label {array[bad]} at index {bad}; MNIST labels are 0..9; {hint}')
  return array


def _read_header(f, name, kind, hint):
  """Reads and checks the IDX header; returns (magic, count[, rows, cols])."""
  first = f.read(8)
  if len(first) < 8:
    raise DataError(f'{name} is too short to be an IDX file ({len(first)} bytes); {hint}')
  magic, count = struct.unpack('>II', first)
  want = IMAGES_MAGIC if kind == 'images' else LABELS_MAGIC
  if magic != want:
    found = {IMAGES_MAGIC: 'an images file', LABELS_MAGIC: 'a labels file'}.get(magic, f'magic 0x{magic:08x}')
    raise DataError(f'{name} should be an IDX {kind} file (magic 0x{want:08x}) but is {found}; {hint}')
  if kind == 'labels':
    return (magic, count)
  dims = f.read(8)
  if len(dims) < 8:
    raise DataError(f'{name} is too short to be an IDX images file; {hint}')
  rows, cols = struct.unpack('>II', dims)
  if (rows, cols) != (IMAGE_SIZE, IMAGE_SIZE):
    raise DataError(f'{name} holds {rows}x{cols} images; MNIST images are {IMAGE_SIZE}x{IMAGE_SIZE}; {hint}')
  return (magic, count, rows, cols)


def _pack(header):
  return struct.pack('>' + 'I' * len(header), *header)


def _expected_length(header, kind):
  """Total file length (header included) that the header promises."""
  count = header[1]
  return len(_pack(header)) + count * (NUM_PIXELS if kind == 'images' else 1)


def _read_exactly(f, size, name, hint):
  """Reads exactly `size` bytes and checks that nothing follows, growing the buffer only as data arrives."""
  buffer = bytearray()
  while len(buffer) <= size:
    chunk = f.read(min(_READ_CHUNK, size + 1 - len(buffer)))
    if not chunk:
      break
    buffer += chunk
  if len(buffer) < size:
    raise DataError(f'{name} is truncated: its header promises {size:,} bytes of data but only '
                    f'{len(buffer):,} follow; {hint}')
  if len(buffer) > size:
    raise DataError(f'{name} is corrupted: it holds more data than its header describes; {hint}')
  return bytes(buffer)


# ------------------------------------------------------------------------------------------------ downloading


def download(file_name, data_dir, mirrors=MIRRORS, sha256=None, timeout=30.0):
  """Downloads `file_name` (e.g. 'train-images-idx3-ubyte.gz') into `data_dir`, verified and atomically.

  Mirrors are tried in turn; a mirror that fails (HTTP error, connection error, truncated body, wrong checksum)
  is reported and the next one is tried. The bytes go to a temporary file in `data_dir` that is renamed onto the
  final name only after the checksum matches, so no partial or unverified file is ever left behind.

  Args:
    file_name: the file to fetch, relative to each mirror URL.
    data_dir: an existing directory.
    mirrors: base URLs ending in '/'. Only https:// is accepted, except plain http to the loopback interface,
      which the tests use.
    sha256: expected hex digest; defaults to the published one in `SHA256`.
    timeout: seconds to wait on a silent connection.

  Returns:
    The path of the verified file.

  Raises:
    DownloadError: no mirror produced a verified file. The message names every mirror tried and why it failed.
  """
  expected = (sha256 or SHA256[file_name]).lower()
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


# ------------------------------------------------------------------------------------------------ loading


def find_file(data_dir, name):
  """The path of `name` in `data_dir`, uncompressed or .gz, or None."""
  for candidate in (name, name + '.gz'):
    path = os.path.join(data_dir, candidate)
    if os.path.exists(path):
      return path
  return None


def ensure_files(data_dir, mirrors=MIRRORS, checksums=None, timeout=30.0):
  """Makes sure all four IDX files are in `data_dir`, downloading the missing ones. Returns {name: path}."""
  if os.path.exists(data_dir) and not os.path.isdir(data_dir):
    raise DataError(f'--data_dir {data_dir} is a file; point it at a directory holding (or to hold) the MNIST files')
  paths = {name: find_file(data_dir, name) for name in FILE_NAMES}
  missing = [name for name, path in paths.items() if path is None]
  if not missing:
    return paths
  created = not os.path.exists(data_dir)
  try:
    os.makedirs(data_dir, exist_ok=True)
  except OSError as e:
    raise DataError(f'cannot create data directory {data_dir}: {e.strerror or e}') from None
  if not os.access(data_dir, os.W_OK):
    raise DataError(f'data directory {data_dir} is not writable, so the missing MNIST files cannot be '
                    f'downloaded into it')
  failures = []
  for name in missing:
    gz = name + '.gz'
    try:
      paths[name] = download(gz, data_dir, mirrors, (checksums or SHA256).get(gz), timeout)
    except DownloadError as e:
      failures.extend(e.failures)
  if failures:
    if created and not os.listdir(data_dir):
      os.rmdir(data_dir)  # leave no trace of a download that fetched nothing
    names = ', '.join(n + '.gz' for n in missing)
    raise DownloadError(f'MNIST could not be downloaded: {_summarize(failures)}. Put {names} into '
                        f'{os.path.abspath(data_dir)}, or pass --data_dir=DIR pointing at them')
  return paths


def _summarize(failures):
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


def load_split(images_path, labels_path):
  """Reads one split; returns (images float32 [N, 784] in [0, 1], labels uint8 [N])."""
  images = read_idx(images_path, 'images')
  labels = read_idx(labels_path, 'labels')
  if len(images) != len(labels):
    raise DataError(f'{os.path.basename(images_path)} holds {len(images):,} images but '
                    f'{os.path.basename(labels_path)} holds {len(labels):,} labels; the two files must match')
  if len(images) == 0:
    raise DataError(f'{os.path.basename(images_path)} holds no images')
  pixels = images.reshape(len(images), NUM_PIXELS).astype(np.float32)
  pixels *= 1.0 / 255.0
  return pixels, labels


def load_mnist(data_dir, mirrors=MIRRORS, checksums=None, timeout=30.0):
  """Loads MNIST from `data_dir`, downloading whatever is missing. Returns a `Dataset` of numpy arrays."""
  paths = ensure_files(data_dir, mirrors, checksums, timeout)
  train = load_split(*(paths[n] for n in SPLITS['train']))
  test = load_split(*(paths[n] for n in SPLITS['test']))
  return Dataset(train[0], train[1], test[0], test[1])


def write_idx(path, array):
  """Writes a uint8 array as an IDX file (gzipped if `path` ends in .gz). Used to make small test data sets."""
  array = np.asarray(array, dtype=np.uint8)
  magic = IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC
  data = struct.pack('>II', magic, array.shape[0])
  if array.ndim == 3:
    data += struct.pack('>II', array.shape[1], array.shape[2])
  data += array.tobytes()
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(data)
