"""Parse and validate IDX files (the format of MNIST and Fashion-MNIST).

The IDX format (LeCun et al.) is a big-endian header followed by raw uint8 pixels:

    images: magic 0x00000803, int32 count, int32 rows, int32 cols, then count*rows*cols bytes
    labels: magic 0x00000801, int32 count,                          then count bytes (0..9)

A file is either gzipped (`train-images-idx3-ubyte.gz`, as distributed) or uncompressed
(`train-images-idx3-ubyte`). Its header is checked against its length before any large allocation (magic number,
counts, 28x28 images, exactly as many bytes as the header promises), so a corrupted header that claims billions of
images fails at once. `read_idx_and_fingerprint` also returns the SHA-256 of the decompressed contents, which
vae/data.py compares with the known data sets' fingerprints.

Pixels become float32 intensities in [0, 1]; what the model makes of them is vae/preprocess.py's business.

References:
  [1] Y. LeCun, C. Cortes, C. Burges. The MNIST database of handwritten digits.
      http://yann.lecun.com/exdb/mnist/
"""

import gzip
import hashlib
import os
import struct
import zlib

import numpy as np

from vae.commands.errors import DataError
from vae.preprocess import IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS

IMAGES_MAGIC = 0x00000803  # uint8 data, 3 dimensions
LABELS_MAGIC = 0x00000801  # uint8 data, 1 dimension


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

# ------------------------------------------------------------------------------------------------ IDX parsing


def read_idx(path, kind):
  """Reads one IDX file (gzipped if `path` ends in .gz) and returns its uint8 array.

  Args:
    path: the file.
    kind: 'images' (returns [N, 28, 28]) or 'labels' (returns [N], values 0..9).

  Raises:
    DataError: with a one-line explanation, for any file that is not a complete, valid IDX file of that kind.
  """
  return _read(path, kind, fingerprint=False)[0]


def read_idx_and_fingerprint(path, kind):
  """`read_idx`, and the SHA-256 hex digest of the file's decompressed contents (header and data)."""
  return _read(path, kind, fingerprint=True)


def _read(path, kind, fingerprint):
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

  digest = None
  if fingerprint:
    hasher = hashlib.sha256(_pack(header))
    hasher.update(payload)
    digest = hasher.hexdigest()
  array = np.frombuffer(payload, dtype=np.uint8)
  if kind == 'images':
    return array.reshape(header[1], IMAGE_SIZE, IMAGE_SIZE), digest
  if array.size and array.max() >= NUM_CLASSES:
    bad = int(np.argmax(array >= NUM_CLASSES))
    raise DataError(f'{name} holds label {array[bad]} at index {bad}; MNIST labels are 0..9; {hint}')
  return array, digest


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


# ------------------------------------------------------------------------------------------------ loading


def find_file(data_dir, name):
  """The path of `name` in `data_dir`, uncompressed or .gz, or None."""
  for candidate in (name, name + '.gz'):
    path = os.path.join(data_dir, candidate)
    if os.path.exists(path):
      return path
  return None


def to_split(images, labels, images_path, labels_path):
  """uint8 images [N, 28, 28] and labels [N] -> (images float32 [N, 784] in [0, 1], labels uint8 [N])."""
  if len(images) != len(labels):
    raise DataError(f'{os.path.basename(images_path)} holds {len(images):,} images but '
                    f'{os.path.basename(labels_path)} holds {len(labels):,} labels; the two files must match')
  if len(images) == 0:
    raise DataError(f'{os.path.basename(images_path)} holds no images')
  pixels = images.reshape(len(images), NUM_PIXELS).astype(np.float32)
  pixels *= 1.0 / 255.0
  return pixels, labels


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
