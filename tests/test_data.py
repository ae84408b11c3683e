import gzip
import os
import re
import shutil
import subprocess
import sys
import struct
import tracemalloc

import numpy as np
import pytest

from vae import data, preprocess
from vae.sources import idx
from vae.commands.errors import DataError
from conftest import REPO_ROOT, synthetic_digits, write_mnist


@pytest.mark.parametrize('suffix', ['', '.gz'])
def test_idx_round_trip(tmp_path, suffix):
  images, labels = synthetic_digits(12, seed=0)
  idx.write_idx(str(tmp_path / f'i{suffix}'), images)
  idx.write_idx(str(tmp_path / f'l{suffix}'), labels)
  np.testing.assert_array_equal(idx.read_idx(str(tmp_path / f'i{suffix}'), 'images'), images)
  np.testing.assert_array_equal(idx.read_idx(str(tmp_path / f'l{suffix}'), 'labels'), labels)


def test_load_mnist_scales_pixels_to_unit_interval(mnist_dir):
  mnist = data.load('mnist', mnist_dir, mirrors=())
  assert mnist.train_images.shape == (256, 784) and mnist.train_images.dtype == np.float32
  assert mnist.test_images.shape == (64, 784) and mnist.test_labels.shape == (64,)
  assert 0.0 <= mnist.train_images.min() and mnist.train_images.max() <= 1.0
  raw, _ = synthetic_digits(256, seed=(0, 0, 0))  # what write_mnist wrote as the training images
  np.testing.assert_allclose(mnist.train_images[5], raw[5].reshape(784) / 255.0, rtol=1e-6)


def test_uncompressed_files_are_used_too(tmp_path):
  write_mnist(str(tmp_path), gz=False)
  assert data.load('mnist', str(tmp_path), mirrors=()).train_images.shape == (256, 784)


def _images_file(tmp_path, suffix='', count=4, rows=28, cols=28):
  path = str(tmp_path / f'train-images-idx3-ubyte{suffix}')
  idx.write_idx(path, np.zeros((count, rows, cols), np.uint8))
  return path


def _rewrite(path, content):
  with open(path, 'wb') as f:
    f.write(content)


def test_empty_file(tmp_path):
  path = _images_file(tmp_path)
  _rewrite(path, b'')
  with pytest.raises(DataError, match=r'train-images-idx3-ubyte is too short to be an IDX file \(0 bytes\)'):
    idx.read_idx(path, 'images')


def test_empty_gz_file(tmp_path):
  path = _images_file(tmp_path, '.gz')
  _rewrite(path, b'')
  with pytest.raises(DataError, match='is not a gzip file'):
    idx.read_idx(path, 'images')


def test_gz_cut_in_half(tmp_path):
  images, _ = synthetic_digits(50, seed=0)
  path = str(tmp_path / 'x.gz')
  idx.write_idx(path, images)
  content = open(path, 'rb').read()
  _rewrite(path, content[:len(content) // 2])
  with pytest.raises(DataError, match=r'x.gz is truncated or corrupted .*delete .* to download it again'):
    idx.read_idx(path, 'images')


def test_gz_with_a_flipped_byte_fails_its_crc(tmp_path):
  images, _ = synthetic_digits(50, seed=0)
  path = str(tmp_path / 'x.gz')
  idx.write_idx(path, images)
  content = bytearray(open(path, 'rb').read())
  content[len(content) // 2] ^= 0xFF
  _rewrite(path, bytes(content))
  with pytest.raises(DataError, match='x.gz is (truncated or )?corrupted'):
    idx.read_idx(path, 'images')


def test_raw_file_cut_short(tmp_path):
  path = _images_file(tmp_path)
  content = open(path, 'rb').read()
  _rewrite(path, content[:-100])
  with pytest.raises(DataError, match=r'is 3,052 bytes but its header says 4 images \(3,152 bytes\)'):
    idx.read_idx(path, 'images')


def test_not_gzip_at_all(tmp_path):
  path = str(tmp_path / 'train-images-idx3-ubyte.gz')
  _rewrite(path, b'<html>404 Not Found</html>')
  with pytest.raises(DataError, match='train-images-idx3-ubyte.gz is not a gzip file'):
    idx.read_idx(path, 'images')


@pytest.mark.parametrize('suffix', ['', '.gz'])
def test_labels_file_where_images_belong(tmp_path, suffix):
  path = str(tmp_path / f'labels{suffix}')
  idx.write_idx(path, np.zeros(5, np.uint8))
  with pytest.raises(DataError, match=r'should be an IDX images file \(magic 0x00000803\) but is a labels file'):
    idx.read_idx(path, 'images')


def test_unknown_magic(tmp_path):
  path = str(tmp_path / 'junk')
  _rewrite(path, struct.pack('>II', 0xDEADBEEF, 1) + b'\0' * 8)
  with pytest.raises(DataError, match='but is magic 0xdeadbeef'):
    idx.read_idx(path, 'labels')


def test_images_that_are_not_28x28(tmp_path):
  path = _images_file(tmp_path, '.gz', rows=27)
  with pytest.raises(DataError, match='holds 27x28 images; MNIST images are 28x28'):
    idx.read_idx(path, 'images')


def test_labels_outside_0_to_9(tmp_path):
  path = str(tmp_path / 'labels.gz')
  idx.write_idx(path, np.array([1, 2, 11, 3], np.uint8))
  with pytest.raises(DataError, match='holds label 11 at index 2; MNIST labels are 0..9'):
    idx.read_idx(path, 'labels')


def test_image_and_label_counts_that_disagree(tmp_path):
  images, _ = synthetic_digits(64, seed=0)
  with pytest.raises(DataError, match='t10k-images-idx3-ubyte.gz holds 64 images but t10k-labels-idx1-ubyte.gz '
                                     'holds 63 labels'):
    idx.to_split(images, np.zeros(63, np.uint8), 'd/t10k-images-idx3-ubyte.gz', 'd/t10k-labels-idx1-ubyte.gz')


def test_trailing_bytes_beyond_the_header_count(tmp_path):
  path = _images_file(tmp_path, '.gz')
  content = gzip.decompress(open(path, 'rb').read())
  _rewrite(path, gzip.compress(content + b'\0' * 10))
  with pytest.raises(DataError, match='is corrupted: it holds more data than its header describes'):
    idx.read_idx(path, 'images')


def without_root_privileges(code, argument):
  """Runs `code` (with the repository importable and `argument` as sys.argv[2]) in a child that, though root,
  has dropped CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (util-linux's setpriv): still uid 0, so it can start this
  Python, but bound by files' modes like anyone. The child must exit 0; returns the CompletedProcess."""
  setpriv = shutil.which('setpriv')
  if setpriv is None:
    pytest.skip('running as root without util-linux setpriv: no way to act as an unprivileged user')
  drop = '-dac_override,-dac_read_search'
  result = subprocess.run([setpriv, f'--bounding-set={drop}', f'--inh-caps={drop}', sys.executable, '-c',
                           'import sys; sys.path.insert(0, sys.argv[1])\n' + code, REPO_ROOT, argument],
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  return result


def test_file_without_read_permission(tmp_path):
  """The real permission check: a file its reader may not open. Root reads everything through its capabilities
  CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so as root the read is made by a child that has dropped both
  (util-linux's setpriv): still uid 0, so it can start this Python, but bound by the file's mode like anyone."""
  path = _images_file(tmp_path)
  os.chmod(path, 0)
  if os.geteuid() != 0:
    with pytest.raises(DataError, match=f'cannot read {path}: permission denied'):
      idx.read_idx(path, 'images')
    return
  result = without_root_privileges('from vae.sources import idx\nfrom vae.commands import errors\ntry:\n  idx.read_idx(sys.argv[2], "images")\n'
                                   'except errors.DataError as e:\n  print(e)\n', path)
  assert result.stdout.strip() == f'cannot read {path}: permission denied'


@pytest.mark.parametrize('suffix', ['', '.gz'])
def test_a_header_claiming_billions_of_images_fails_fast_and_small(tmp_path, suffix):
  path = str(tmp_path / f'huge{suffix}')
  header = struct.pack('>IIII', idx.IMAGES_MAGIC, 3_000_000_000, 28, 28)
  content = header + bytes(784 * 10)
  _rewrite(path, gzip.compress(content) if suffix else content)
  tracemalloc.start()
  with pytest.raises(DataError, match='3,000,000,000 images'):
    idx.read_idx(path, 'images')
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  assert peak < 10 * 2 ** 20  # refused from the header, before any large allocation


def test_data_dir_that_is_a_file(tmp_path):
  path = tmp_path / 'notadir'
  path.write_text('x')
  with pytest.raises(DataError, match=f'--data_dir {path} is a file'):
    data.load('mnist', str(path), mirrors=())


def test_train_batch_indices_are_permutations_of_the_training_set():
  batches = iter(preprocess.train_batch_indices(num_examples=40, batch_size=10, seed=0))
  first_pass = np.concatenate([next(batches).numpy() for _ in range(4)])
  assert sorted(first_pass.tolist()) == list(range(40))     # without replacement, like next_batch
  second_pass = np.concatenate([next(batches).numpy() for _ in range(4)])
  assert sorted(second_pass.tolist()) == list(range(40))
  assert first_pass.tolist() != second_pass.tolist()         # reshuffled every pass
  again = iter(preprocess.train_batch_indices(num_examples=40, batch_size=10, seed=0))
  assert np.concatenate([next(again).numpy() for _ in range(4)]).tolist() == first_pass.tolist()


def test_train_batch_indices_can_start_at_any_step():
  whole = iter(preprocess.train_batch_indices(num_examples=30, batch_size=7, seed=3))
  sequence = [next(whole).numpy().tolist() for _ in range(12)]
  resumed = iter(preprocess.train_batch_indices(num_examples=30, batch_size=7, seed=3, start_step=5))
  assert [next(resumed).numpy().tolist() for _ in range(7)] == sequence[5:]


def test_a_data_directory_that_cannot_be_written_is_one_line(tmp_path):
  """The missing files cannot be downloaded into a read-only directory: one line, before any download. As root
  the check runs in a child without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (see the permission test above)."""
  read_only = tmp_path / 'mnist'
  read_only.mkdir()
  read_only.chmod(0o555)
  expected = (f'data directory {read_only} is not writable, so the missing MNIST files cannot be downloaded into '
              f'it')
  if os.geteuid() != 0:
    with pytest.raises(DataError, match=re.escape(expected)):
      data.load('mnist', str(read_only))
    return
  result = without_root_privileges('from vae import data\nfrom vae.commands import errors\ntry:\n  data.load("mnist", sys.argv[2], mirrors=())\n'
                                   'except errors.DataError as e:\n  print(e)\n', str(read_only))
  assert result.stdout.strip() == expected
  assert os.listdir(read_only) == []
