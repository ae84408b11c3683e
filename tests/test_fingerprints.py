"""Files are trusted for what they hold: the content fingerprints of MNIST and Fashion-MNIST, and their refusals.

The synthetic sets of conftest stand in for the real ones: `write_mnist(dir, dataset=...)` makes their
fingerprints known as that data set's, so each refusal line is checked without the real data.
"""

import gzip
import os
import sys

import numpy as np
import pytest

from vae import data
from vae.sources import idx
from vae.commands.errors import DataError
from conftest import REPO_ROOT, Started, many_mains, offline_here, refusing_port, user_env, write_mnist


def test_each_file_is_accepted_for_its_contents_however_it_is_compressed(tmp_path):
  source = write_mnist(str(tmp_path / 'source'))
  expected = data.load('mnist', str(tmp_path / 'source'), mirrors=())
  rewrapped = tmp_path / 'rewrapped'
  rewrapped.mkdir()
  for name, path in source.items():
    contents = gzip.decompress(open(path, 'rb').read())
    if name.startswith('train'):  # another gzip wrapper: other .gz bytes, the same contents
      (rewrapped / (name + '.gz')).write_bytes(gzip.compress(contents, compresslevel=1, mtime=12345))
    else:
      (rewrapped / name).write_bytes(contents)
  loaded = data.load('mnist', str(rewrapped), mirrors=())
  np.testing.assert_array_equal(loaded.train_images, expected.train_images)
  np.testing.assert_array_equal(loaded.test_labels, expected.test_labels)


def test_another_data_sets_files_are_refused_with_what_they_hold(tmp_path):
  digits, clothes = str(tmp_path / 'digits'), str(tmp_path / 'clothes')
  write_mnist(digits)
  write_mnist(clothes, dataset='fashion_mnist')
  with pytest.raises(DataError) as info:
    data.load('mnist', clothes, mirrors=())
  assert str(info.value) == (
      f'{clothes}/train-images-idx3-ubyte.gz holds Fashion-MNIST\'s training images, not MNIST\'s: use '
      f'--dataset=fashion_mnist to train on Fashion-MNIST, or point --data_dir at the MNIST files')
  with pytest.raises(DataError) as info:
    data.load('fashion_mnist', digits, mirrors=())
  assert str(info.value) == (
      f'{digits}/train-images-idx3-ubyte.gz holds MNIST\'s training images, not Fashion-MNIST\'s: use '
      f'--dataset=mnist to train on MNIST, or point --data_dir at the Fashion-MNIST files')


def test_one_file_of_another_set_among_the_right_ones_is_named(tmp_path):
  digits, clothes = tmp_path / 'digits', tmp_path / 'clothes'
  write_mnist(str(digits))
  write_mnist(str(clothes), dataset='fashion_mnist')
  os.replace(clothes / 't10k-labels-idx1-ubyte.gz', digits / 't10k-labels-idx1-ubyte.gz')
  with pytest.raises(DataError) as info:
    data.load('mnist', str(digits), mirrors=())
  assert str(info.value) == (
      f'{digits}/t10k-labels-idx1-ubyte.gz holds Fashion-MNIST\'s test labels, not MNIST\'s: use '
      f'--dataset=fashion_mnist to train on Fashion-MNIST, or point --data_dir at the MNIST files')


def test_files_of_one_set_under_each_others_names_are_mixed_up(tmp_path):
  digits = tmp_path / 'digits'
  write_mnist(str(digits), num_train=64, num_test=64)  # same counts, so the swapped files still pair up
  for name in ('train-images-idx3-ubyte.gz', 't10k-images-idx3-ubyte.gz'):
    os.replace(digits / name, digits / ('swap-' + name))
  os.replace(digits / 'swap-train-images-idx3-ubyte.gz', digits / 't10k-images-idx3-ubyte.gz')
  os.replace(digits / 'swap-t10k-images-idx3-ubyte.gz', digits / 'train-images-idx3-ubyte.gz')
  with pytest.raises(DataError) as info:
    data.load('mnist', str(digits), mirrors=())
  assert str(info.value) == (
      f'{digits}/train-images-idx3-ubyte.gz holds MNIST\'s test images, not its training images: the files are '
      f'mixed up; give each file its own name (t10k-images-idx3-ubyte for these)')


def test_an_altered_copy_is_refused_as_modified_or_damaged(tmp_path):
  digits = str(tmp_path / 'digits')
  paths = write_mnist(digits)
  images = idx.read_idx(paths['t10k-images-idx3-ubyte'], 'images').copy()
  images[3, 14, 14] ^= 1  # one pixel, one grey level: still a valid IDX file, gzipped anew
  idx.write_idx(paths['t10k-images-idx3-ubyte'], images)
  with pytest.raises(DataError) as info:
    data.load('mnist', digits, mirrors=())
  assert str(info.value) == (
      f'{digits}/t10k-images-idx3-ubyte.gz is not MNIST\'s test images: its contents match no known data set, so '
      f'the file was modified or damaged; delete it to download it again, or replace it with a good copy')


def test_each_file_is_fingerprinted_once_per_process(tmp_path, monkeypatch):
  digits = str(tmp_path / 'digits')
  write_mnist(digits)
  calls = []
  original = idx.read_idx_and_fingerprint
  monkeypatch.setattr(idx, 'read_idx_and_fingerprint', lambda path, kind: calls.append(path) or original(path, kind))
  data.load('mnist', digits, mirrors=())
  data.load('mnist', digits, mirrors=())
  assert len(calls) == 4
  with pytest.raises(DataError, match='holds MNIST\'s training images, not Fashion-MNIST\'s'):
    data.load('fashion_mnist', digits, mirrors=())  # checked again for another data set


@pytest.fixture(scope='module', autouse=True)
def run_py_children(tmp_path_factory):
  """The file's run.py processes, started as the file's first test starts, so that their start-up overlaps the
  tests that run in this process: {name: (Started, directory)}."""
  root = tmp_path_factory.mktemp('children')
  clothes = str(root / 'clothes')
  write_mnist(clothes, dataset='fashion_mnist')
  children = {'clothes': clothes}
  for setting in ('0', '1'):  # both CPU paths: with oneDNN on, TensorFlow has start-up lines of its own
    out = root / f'out-onednn{setting}'
    children[f'mixed-up-{setting}'] = (Started(
        [sys.executable, os.path.join(REPO_ROOT, 'run.py'), f'--data_dir={clothes}', f'--output_dir={out}',
         '--epochs=1', '--updates_per_epoch=1'], env=user_env(TF_ENABLE_ONEDNN_OPTS=setting)), out)
  yield children
  for name, value in children.items():
    if name != 'clothes':
      value[0].stop()


@pytest.mark.parametrize('setting', ['0', '1'], ids=['onednn-off', 'onednn-on'])
def test_run_py_refuses_a_mixed_up_directory_before_any_work(run_py_children, setting):
  clothes = run_py_children['clothes']
  process, out = run_py_children[f'mixed-up-{setting}']
  result = process.finished()
  assert result.returncode == 1
  assert result.stderr.splitlines() == [
      f'error: {clothes}/train-images-idx3-ubyte.gz holds Fashion-MNIST\'s training images, not MNIST\'s: use '
      f'--dataset=fashion_mnist to train on Fashion-MNIST, or point --data_dir at the MNIST files']
  assert not out.exists()


def test_an_offline_tfds_run_prints_exactly_one_line_and_leaves_the_data_directory_as_it_was(tmp_path):
  # The real TFDS path, with no mock (run.py's main, in this process), made offline by the test: the connection
  # check meets a refusing port.
  data_dir = tmp_path / 'tfds'
  data_dir.mkdir()
  (data_dir / 'notes.txt').write_text('mine')
  with refusing_port() as port, offline_here(port):
    [(status, stderr)] = many_mains('run', [['--dataset=kmnist', f'--data_dir={data_dir}',
                                             f'--output_dir={tmp_path / "tfds-out"}']])
  assert status == 1
  lines = stderr.splitlines()
  assert len(lines) == 1, stderr
  assert lines[0].startswith(f'error: kmnist is not prepared in {data_dir} and could not be downloaded (no network: '
                             f'127.0.0.1 unreachable, Connection refused)')
  assert sorted(os.listdir(data_dir)) == ['notes.txt'] and (data_dir / 'notes.txt').read_text() == 'mine'
