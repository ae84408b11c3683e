"""Other data sets: Fashion-MNIST through its IDX files, any TFDS image data set through tensorflow-datasets.

No network: Fashion-MNIST comes from the local HTTP mirror of test_download.py, TFDS data from
`tfds.testing.mock_data`, which makes random examples that follow a data set's real metadata (shapes, classes).
"""

import csv
import json
import os
import sys
import threading
import socket

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from vae.run import config
from vae.run.config import Config
from vae import data, networks, viz
from vae.sources import tfds as tfds_source
from vae.commands.errors import DataError, DownloadError, VAEError
from conftest import train_run, REPO_ROOT, Started, many_mains, refusing_port, unexpected_stderr, user_env, write_mnist
from test_download import fashion_mirror  # noqa: F401  (the local mirror fixture)

QUIET = lambda *args: None  # noqa: E731


def test_fashion_mnist_is_downloaded_verified_and_named(tmp_path, fashion_mirror):  # noqa: F811  (the fixture)
  base, _ = fashion_mirror
  dataset = data.load('fashion_mnist', str(tmp_path / 'fashion'), mirrors=[base + '/good/'], timeout=5)
  assert dataset.name == 'fashion_mnist' and dataset.image_shape == (28, 28, 1)
  assert dataset.train_images.shape == (256, 784) and dataset.test_labels.shape == (64,)
  assert dataset.class_names[:2] == ('T-shirt/top', 'Trouser') and len(dataset.class_names) == 10


def test_each_data_set_has_a_default_directory_of_its_own(tmp_path):
  # The original's ../mnist stays MNIST's; Fashion-MNIST's files have the same names, so they must not share it.
  assert data.resolve_data_dir('mnist') == os.path.join('..', 'mnist')
  assert data.resolve_data_dir('fashion_mnist') == os.path.join('..', 'fashion_mnist')
  assert data.resolve_data_dir('emnist/letters') == os.path.join('..', 'tensorflow_datasets')
  # --data_dir when given, else the one the saved run used
  assert data.resolve_data_dir('mnist', 'mine', 'saved') == 'mine'
  assert data.resolve_data_dir('mnist', None, 'saved') == 'saved'


def test_fashion_mnist_offline_names_itself(tmp_path):
  with refusing_port() as port:
    with pytest.raises(DownloadError, match=r'^Fashion-MNIST could not be downloaded: no mirror could be reached'):
      data.load('fashion_mnist', str(tmp_path / 'fashion'), mirrors=[f'http://127.0.0.1:{port}/'], timeout=5)


@pytest.fixture
def mock_tfds(monkeypatch):
  """TFDS mocked, and a network that answers: the connection check reaches a listening socket on 127.0.0.1 (the
  mocked download itself is a no-op)."""
  with socket.socket() as listener:
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)
    monkeypatch.setattr(tfds_source, 'PROBE_HOST', listener.getsockname())
    with tfds.testing.mock_data(num_examples=40):
      yield


# cifar10 reads its class names from the downloaded files, so unprepared (as under the mock) they are '0'..'9'.
@pytest.mark.parametrize('name, shape, first_class', [('kmnist', (28, 28, 1), 'o'), ('cifar10', (32, 32, 3), '0')])
def test_a_tfds_data_set_loads_with_its_shape_and_class_names(tmp_path, mock_tfds, name, shape, first_class):
  dataset = data.load(name, str(tmp_path))
  assert dataset.name == name and dataset.image_shape == shape
  assert dataset.class_names[0] == first_class and len(dataset.class_names) == 10
  values = int(np.prod(shape))
  assert dataset.train_images.shape == (40, values) and dataset.test_images.shape == (40, values)
  assert dataset.train_images.dtype == np.float32
  assert 0.0 <= dataset.train_images.min() and dataset.train_images.max() <= 1.0
  assert dataset.train_labels.shape == (40,) and set(dataset.train_labels) <= set(range(len(dataset.class_names)))


# kmnist: grey, fc, a 3-d latent space (samples and reconstructions), static binarisation, whose binary test
# images the reconstructions frame shows; cifar10: colour, conv, the 2-d canvas, dynamic binarisation.
@pytest.mark.parametrize('name, architecture, latent_dim, binarize, frames', [
    ('kmnist', 'fc', 3, 'static', {'samples': (10, 10), 'reconstructions': (8, 10)}),
    ('cifar10', 'conv', 2, 'dynamic', {'canvas': (15, 15)})])
def test_a_few_steps_on_a_tfds_data_set_draw_frames_that_fit_it(tmp_path, mock_tfds, name, architecture, latent_dim,
                                                                binarize, frames):
  out = tmp_path / 'out'
  config = Config(dataset=name, data_dir=str(tmp_path / 'tfds'), output_dir=str(out), epochs=2,
                       updates_per_epoch=3, batch_size=8, eval_k=2, encoder_architecture=architecture,
                       decoder_architecture=architecture, latent_dim=latent_dim, binarize=binarize)
  train_run(config, log=QUIET)
  rows = list(csv.DictReader(open(out / 'metrics.csv')))
  assert [r['dataset'] for r in rows] == [name, name] and all(np.isfinite(float(r['test_elbo'])) for r in rows)
  assert json.load(open(out / 'evaluation.json'))['dataset'] == name
  assert json.load(open(out / 'flags.json'))['binarize'] == binarize
  height, width, channels = data.describe(name, str(tmp_path / 'tfds'))[0]
  assert sorted(os.listdir(out / 'figs')) == sorted([*frames, 'spread'])
  for kind, (rows_of_tiles, columns) in frames.items():  # 40 test images: 4 rows of originals, 4 of reconstructions
    frame = np.asarray(Image.open(out / 'figs' / kind / 'epoch_0002.png'))
    if channels == 3:
      assert frame.shape == (rows_of_tiles * height, columns * width, 3), kind
      assert np.any(frame[..., 0] != frame[..., 1]), kind  # really in colour
    else:
      assert frame.shape == (rows_of_tiles * height, columns * width), kind
  if 'reconstructions' in frames:  # its first row: the binary test images the model is scored on
    originals = np.asarray(Image.open(out / 'figs' / 'reconstructions' / 'epoch_0002.png'))[:height]
    assert set(np.unique(originals).tolist()) == {0, 255}
  # vae.commands.explore on the same run: the binary test images of a binarised run, colour pictures of colour data.
  from vae.commands import explore
  pictures = tmp_path / 'pictures'
  explore.explore(str(out), str(pictures), count=20, pairs=3, steps=4, log=QUIET)
  shown = np.asarray(Image.open(pictures / 'mean_reconstructions.png'))
  assert shown.shape[:2] == (4 * height, 10 * width)
  originals = shown[:height]                       # the first row: test images as the model sees them
  assert set(np.unique(originals).tolist()) == {0, 255}  # binary, as the run was trained and scored on
  if channels == 3:
    assert shown.ndim == 3 and np.any(shown[..., 0] != shown[..., 1])
    assert np.asarray(Image.open(pictures / 'samples.png')).shape == (2 * height, 10 * width, 3)


def test_long_class_names_go_in_a_legend_and_short_ones_on_the_centroids():
  points = np.random.default_rng(0).normal(size=(60, 2))
  labels = np.arange(60) % 3
  fashion = viz.SpreadPlot(labels, data.SOURCES['fashion_mnist'].class_names)
  fashion.render(points, epoch=1)
  assert fashion.legend_names() == ['T-shirt/top', 'Trouser', 'Pullover'] and fashion.class_labels == {}
  fashion.close()
  letters = viz.SpreadPlot(np.arange(60) % 26, [chr(ord('a') + i) for i in range(26)])
  frame = letters.render(points, epoch=1)
  assert letters.legend_names() == [] and len(letters.class_labels) == 26 and frame.ndim == 3
  assert len({tuple(c) for c in viz.class_colours(26)}) == 26  # every class a colour of its own
  letters.close()


def test_data_sets_that_do_not_fit_are_refused(tmp_path):
  with pytest.raises(DataError, match=r'^imdb_reviews is not an image classification data set: it needs an "image" '
                                      r'feature and an integer "label" \(it has label, text\)'):
    data.describe('imdb_reviews', str(tmp_path))
  with pytest.raises(DataError, match=r'^cats_vs_dogs has images of varying shape'):
    data.describe('cats_vs_dogs', str(tmp_path))
  assert networks.shape_problem('encoder', 'conv', (96, 96, 3)) == (
      'the conv networks take 28x28 or 32x32 images with 1 or 3 channels, not 96x96x3; the fc networks take any '
      'shape')
  assert networks.shape_problem('decoder', 'fc', (96, 96, 3)) is None
  assert networks.build_encoder('fc', 2, (96, 96, 3)).inputs[0].shape[-1] == 96 * 96 * 3
  results = many_mains('run', [
      ['--dataset=stl10', '--encoder_architecture=conv', f'--output_dir={tmp_path / "out"}', f'--data_dir={tmp_path}'],
      ['--dataset=no_such_data_set', f'--output_dir={tmp_path / "out"}', f'--data_dir={tmp_path}']])
  assert results == [
      (1, 'error: --encoder_architecture=conv does not fit --dataset=stl10: the conv networks take 28x28 or 32x32 '
          'images with 1 or 3 channels, not 96x96x3; the fc networks take any shape\n'),
      (1, "error: unknown --dataset 'no_such_data_set': the IDX data sets are mnist, fashion_mnist, and any other "
          "name must be a TensorFlow Datasets image data set with integer labels, e.g. --dataset=kmnist\n")]
  assert not os.path.exists(tmp_path / 'out')


def test_a_tfds_data_set_that_cannot_be_downloaded_fails_fast_and_leaves_nothing(tmp_path, monkeypatch):
  data_dir = tmp_path / 'tfds'
  data_dir.mkdir()
  with refusing_port() as port:
    monkeypatch.setattr(tfds_source, 'PROBE_HOST', ('127.0.0.1', port))
    with pytest.raises(DataError) as info:
      data.load('kmnist', str(data_dir))
  message = str(info.value)
  assert message.startswith(f'kmnist is not prepared in {data_dir} and could not be downloaded (no network')
  assert 'tfds build kmnist --data_dir=DIR' in message and '\n' not in message
  assert os.listdir(data_dir) == []


def test_a_failed_tfds_preparation_removes_what_it_created(tmp_path, monkeypatch):
  with socket.socket() as listener:  # the connection check passes: the preparation itself fails
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)
    monkeypatch.setattr(tfds_source, 'PROBE_HOST', listener.getsockname())
    data_dir = tmp_path / 'tfds'
    data_dir.mkdir()
    (data_dir / 'other_data_set').mkdir()      # what was there before stays

    def half_done(self, *args, **kwargs):
      os.makedirs(os.path.join(data_dir, 'downloads', 'partial'))
      os.makedirs(os.path.join(data_dir, 'kmnist', '3.0.1.incomplete'))
      raise OSError('connection reset by peer')

    monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', half_done)
    with pytest.raises(DataError) as info:
      data.load('kmnist', str(data_dir))
  assert str(info.value).startswith(f'kmnist is not prepared in {data_dir} and could not be downloaded (OSError: '
                                    f'connection reset by peer)')
  assert os.listdir(data_dir) == ['other_data_set']


def test_resuming_with_another_data_set_is_refused(tmp_path):
  digits = str(tmp_path / 'digits')
  write_mnist(digits)
  config = Config(data_dir=digits, output_dir=str(tmp_path / 'run'), epochs=1, updates_per_epoch=2,
                       batch_size=16, eval_k=1, do_viz=False)
  train_run(config, log=QUIET)
  clothes = str(tmp_path / 'clothes')
  write_mnist(clothes, dataset='fashion_mnist')
  with pytest.raises(VAEError, match=r'holds a run made with --dataset=mnist, not fashion_mnist'):
    train_run(Config(**{**config.__dict__, 'dataset': 'fashion_mnist', 'data_dir': clothes, 'epochs': 2}),
               log=QUIET)


@pytest.fixture(scope='module', autouse=True)
def default_directory_run(tmp_path_factory):
  """run.py from a working directory beside ../fashion_mnist, started as the file's first test starts so that its
  start-up overlaps the tests that run in this process: (Started, working directory). Its reader goes away at
  once, as in `python run.py | head -0`: the run must carry on to its end all the same."""
  root = tmp_path_factory.mktemp('default-directory')
  write_mnist(str(root / 'fashion_mnist'), dataset='fashion_mnist')
  work = root / 'work'
  work.mkdir()
  process = Started([sys.executable, os.path.join(REPO_ROOT, 'run.py'), '--dataset=fashion_mnist', '--output_dir=out',
                     '--epochs=1', '--updates_per_epoch=2', '--batch_size=16', '--eval_k=1', '--do_viz=False'],
                    cwd=work, env=user_env())
  process.process.stdout.close()
  process.process.stdout = None  # nothing to read: communicate() collects stderr alone
  yield process, work
  process.stop()


def test_run_py_finds_fashion_mnist_in_its_default_directory_and_records_it(default_directory_run):
  process, work = default_directory_run
  result = process.finished()
  # With its stdout closed from the start: no traceback, no BrokenPipeError, and every file written.
  assert result.returncode == 0 and unexpected_stderr(result.stderr) == [] and 'Error' not in result.stderr, \
      result.stderr
  assert json.load(open(work / 'out' / 'evaluation.json'))['eval_k'] == 1
  assert json.load(open(work / 'out' / 'flags.json'))['data_dir'] == os.path.join('..', 'fashion_mnist')
  assert next(csv.DictReader(open(work / 'out' / 'metrics.csv')))['dataset'] == 'fashion_mnist'


def test_the_connection_check_bounds_a_name_lookup_that_never_answers(monkeypatch):
  answered = threading.Event()

  def silent_resolver(address, timeout=None):  # the lookup inside create_connection, on a network that drops it
    answered.wait(30)
    raise OSError('never reached')

  monkeypatch.setattr(tfds_source.socket, 'create_connection', silent_resolver)
  try:
    assert tfds_source.probe_problem(('tfds.example', 443), timeout=0.2) == 'no answer within 0.2 s'
  finally:
    answered.set()
  with refusing_port() as port:
    monkeypatch.undo()
    assert tfds_source.probe_problem(('127.0.0.1', port), timeout=5) == 'Connection refused'


class _FakeBuilder:
  """A TFDS builder's reading side, over splits of our own: {name: (images [N, H, W, C], labels [N])}."""

  def __init__(self, splits):
    import types
    self.name = 'fake'
    self._splits = splits
    self.info = types.SimpleNamespace(splits={name: None for name in splits})

  def as_dataset(self, split, batch_size, shuffle_files):
    import tensorflow as tf
    images, labels = self._splits[split]
    return tf.data.Dataset.from_tensor_slices({'image': images, 'label': labels}).batch(batch_size)


def test_tfds_splits_missing_empty_or_of_the_wrong_size_are_one_line():
  images, labels = np.zeros((5, 28, 28, 1), np.uint8), np.zeros(5, np.int64)
  with pytest.raises(DataError, match=r"^fake has no 'test' split \(it has train, validation\); this model needs a "
                                      r"train and a test split$"):
    tfds_source._read_split(_FakeBuilder({'train': (images, labels), 'validation': (images, labels)}), 'test',
                          (28, 28, 1))
  with pytest.raises(DataError, match=r'^the test split of fake is empty$'):
    tfds_source._read_split(_FakeBuilder({'test': (images[:0], labels[:0])}), 'test', (28, 28, 1))
  with pytest.raises(DataError, match=r'^fake images hold 784 values, not the \(32, 32, 3\) its metadata promises$'):
    tfds_source._read_split(_FakeBuilder({'test': (images, labels)}), 'test', (32, 32, 3))
  pixels, read_labels = tfds_source._read_split(_FakeBuilder({'test': (images + 255, labels)}), 'test', (28, 28, 1))
  assert pixels.shape == (5, 784) and pixels.max() == 1.0 and read_labels.dtype == np.int64
