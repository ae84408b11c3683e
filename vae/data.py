"""The data: `--dataset` and `--data_dir` -> the images of a run, downloaded into `data_dir` when missing.

* `mnist` (the original's) and `fashion_mnist`: four IDX files in `data_dir`, gzipped or not:

      train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte

  Missing files are downloaded from public mirrors and checked against the published SHA-256 of the .gz file.
  Every file is then checked by the SHA-256 of its *decompressed* contents (its fingerprint), so a file is
  trusted for what it holds, however it was compressed. This catches what the file names cannot: MNIST and
  Fashion-MNIST use the same four names, headers and sizes, so a directory of the one passed as the other would
  otherwise train to the end and label every figure wrongly; and a copy whose pixels were altered and
  compressed again is caught too. A refusal says which file, and which known set it holds when it holds one.
* any other name: a TensorFlow Datasets image data set with integer labels, prepared into `data_dir`
  (e.g. `kmnist`, `emnist/letters`, `cifar10`).

Either way the result is a `vae.preprocess.Dataset`: float32 images [N, D] in [0, 1] and integer labels.
This is the module to read; the helpers it calls live in vae/sources/: idx.py parses IDX files, download.py
fetches from mirrors, tfds.py adapts TensorFlow Datasets.

References:
  [1] Y. LeCun, C. Cortes, C. Burges. The MNIST database of handwritten digits. http://yann.lecun.com/exdb/mnist/
  [2] H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
      Algorithms. 2017. https://arxiv.org/abs/1708.07747 (data: https://github.com/zalandoresearch/fashion-mnist)
"""

import collections
import os

from vae.sources import download as downloader
from vae.sources import idx
from vae.commands.errors import DataError, DownloadError
from vae.preprocess import DIGITS, Dataset

IdxSource = collections.namedtuple('IdxSource', ['title', 'mirrors', 'gz_sha256', 'fingerprints', 'class_names'])

# mirrors: tried in this order, https only (the bytes are checked anyway, but nothing needs fetching in clear text).
# gz_sha256: the published SHA-256 of each distributed .gz file, what a download is checked against.
# fingerprints: the SHA-256 of each file's decompressed contents. Neither data set's home page publishes these;
#   they were computed from the original files and are the values other public projects record for them.
#   They identify the contents, whatever gzip wrapper a copy on disk has.
SOURCES = {
    'mnist': IdxSource(
        title='MNIST',
        # CVDF is the mirror TensorFlow uses, ossci-datasets the one torchvision uses; LeCun's own page comes
        # last because it has often been unavailable.
        mirrors=('https://storage.googleapis.com/cvdf-datasets/mnist/',
                 'https://ossci-datasets.s3.amazonaws.com/mnist/',
                 'https://yann.lecun.com/exdb/mnist/'),
        gz_sha256={
            'train-images-idx3-ubyte.gz': '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
            'train-labels-idx1-ubyte.gz': '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
            't10k-images-idx3-ubyte.gz': '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
            't10k-labels-idx1-ubyte.gz': 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
        },
        fingerprints={
            'train-images-idx3-ubyte': 'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
            'train-labels-idx1-ubyte': '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
            't10k-images-idx3-ubyte': '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
            't10k-labels-idx1-ubyte': 'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
        },
        class_names=DIGITS),
    'fashion_mnist': IdxSource(
        title='Fashion-MNIST',
        # The home mirror serves plain http only, so the https copies Keras and the project's GitHub serve are used.
        mirrors=('https://storage.googleapis.com/tensorflow/tf-keras-datasets/',
                 'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/'),
        gz_sha256={
            'train-images-idx3-ubyte.gz': '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84',
            'train-labels-idx1-ubyte.gz': 'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845',
            't10k-images-idx3-ubyte.gz': '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073',
            't10k-labels-idx1-ubyte.gz': '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5',
        },
        fingerprints={
            'train-images-idx3-ubyte': 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
            'train-labels-idx1-ubyte': 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
            't10k-images-idx3-ubyte': '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
            't10k-labels-idx1-ubyte': '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
        },
        class_names=('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
                     'Ankle boot')),
}
IDX_NAMES = tuple(SOURCES)
FOLDER = 'folder'  # images of one's own, in DIR/train and DIR/test (vae/sources/folder.py)
TFDS_EXAMPLE = 'kmnist'

# Every known fingerprint -> (data set, file name): what a file holds, whichever name it sits under.
KNOWN_CONTENTS = {fingerprint: (name, file_name)
                  for name, source in SOURCES.items() for file_name, fingerprint in source.fingerprints.items()}

# What each file holds, in words, for the refusal lines.
ROLES = {'train-images-idx3-ubyte': 'training images', 'train-labels-idx1-ubyte': 'training labels',
         't10k-images-idx3-ubyte': 'test images', 't10k-labels-idx1-ubyte': 'test labels'}

_verified = set()  # (data set, file name, path, size, mtime) of the files this process has already checked


def forget_verified_files():
  """Forgets which files this process has checked, so that the next load checks every file again."""
  _verified.clear()


def resolve_data_dir(name, given=None, saved=None):
  """The data directory of data set `name`: --data_dir as `given`, else the one a saved run used (`saved`, from
  its flags.json), else the default: ../mnist (the original's), ../fashion_mnist, or ../tensorflow_datasets for
  any TFDS data set (TFDS keeps each in a subdirectory of its own). The one place every command resolves it."""
  if given:
    return given
  if saved:
    return saved
  if name == FOLDER:
    return 'images'  # no default location: run.py asks for --data_dir
  return os.path.join('..', name) if name in IDX_NAMES else os.path.join('..', 'tensorflow_datasets')


def describe(name, data_dir):
  """(image_shape, class_names) of data set `name`, without loading its images; DataError with one line if
  `name` is neither an IDX data set nor a TFDS image data set with integer labels."""
  if name in IDX_NAMES:
    return (28, 28, 1), SOURCES[name].class_names
  try:
    from vae.sources import tfds
  except ImportError as e:
    raise DataError(f'--dataset={name} needs tensorflow-datasets, which is not installed ({e}); '
                    f'pip install -r requirements.txt') from None
  try:
    return tfds.describe(name, data_dir)
  except tfds.UnknownDataset:
    raise DataError(f'unknown --dataset {name!r}: the IDX data sets are {", ".join(IDX_NAMES)}, and any other '
                    f'name must be a TensorFlow Datasets image data set with integer labels, e.g. '
                    f'--dataset={TFDS_EXAMPLE}') from None


def load(name, data_dir, mirrors=None, timeout=30.0, image_size=None):
  """The data set `name` as a `vae.preprocess.Dataset`, read from `data_dir` (downloaded into it first if missing).

  `mirrors` replaces an IDX data set's own mirrors (the tests serve the files from a local server); `image_size`
  (H, W) resizes the images of a folder of one's own (FOLDER).
  """
  if name == FOLDER:
    from vae.sources import folder
    return folder.load(data_dir, image_size)
  if name not in IDX_NAMES:
    from vae.sources import tfds
    return tfds.load(name, data_dir)
  source = SOURCES[name]
  paths = ensure_files(data_dir, mirrors or source.mirrors, source.gz_sha256, timeout, source.title)
  splits = []
  for images_name, labels_name in idx.SPLITS.values():
    images = read_verified(name, paths[images_name], images_name, 'images')
    labels = read_verified(name, paths[labels_name], labels_name, 'labels')
    splits.append(idx.to_split(images, labels, paths[images_name], paths[labels_name]))
  (train_images, train_labels), (test_images, test_labels) = splits
  return Dataset(train_images, train_labels, test_images, test_labels, name=name, class_names=source.class_names)


def read_verified(name, path, file_name, kind):
  """The uint8 array of IDX file `path`, after checking that it holds data set `name`'s `file_name`.

  Raises DataError with one line naming the file, and the known set it holds instead, if it holds one.
  """
  stat = os.stat(path)
  seen = (name, file_name, os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
  if seen in _verified:
    return idx.read_idx(path, kind)
  array, fingerprint = idx.read_idx_and_fingerprint(path, kind)
  problem = contents_problem(name, file_name, path, fingerprint)
  if problem:
    raise DataError(problem)
  _verified.add(seen)
  return array


def contents_problem(name, file_name, path, fingerprint):
  """Why a file with this fingerprint is not data set `name`'s `file_name`, as one line, or None if it is."""
  holds = KNOWN_CONTENTS.get(fingerprint)
  if holds == (name, file_name):
    return None
  title, role = SOURCES[name].title, ROLES[file_name]
  if holds is None:
    return (f'{path} is not {title}\'s {role}: its contents match no known data set, so the file was modified or '
            f'damaged; delete it to download it again, or replace it with a good copy')
  other, other_file = holds
  other_title, other_role = SOURCES[other].title, ROLES[other_file]
  if other == name:
    return (f'{path} holds {title}\'s {other_role}, not its {role}: the files are mixed up; give each file its '
            f'own name ({other_file} for these)')
  return (f'{path} holds {other_title}\'s {other_role}, not {title}\'s: use --dataset={other} to train on '
          f'{other_title}, or point --data_dir at the {title} files')


def ensure_files(data_dir, mirrors, checksums, timeout=30.0, title='MNIST'):
  """Makes sure all four IDX files are in `data_dir`, downloading the missing ones. Returns {name: path}."""
  if os.path.exists(data_dir) and not os.path.isdir(data_dir):
    raise DataError(f'--data_dir {data_dir} is a file; point it at a directory holding (or to hold) the {title} '
                    f'files')
  paths = {name: idx.find_file(data_dir, name) for name in idx.FILE_NAMES}
  missing = [name for name, path in paths.items() if path is None]
  if not missing:
    return paths
  created = not os.path.exists(data_dir)
  try:
    os.makedirs(data_dir, exist_ok=True)
  except OSError as e:
    raise DataError(f'cannot create data directory {data_dir}: {e.strerror or e}') from None
  if not os.access(data_dir, os.W_OK):
    raise DataError(f'data directory {data_dir} is not writable, so the missing {title} files cannot be '
                    f'downloaded into it')
  failures = []
  for name in missing:
    try:
      paths[name] = downloader.download(name + '.gz', data_dir, mirrors, checksums[name + '.gz'], timeout)
    except DownloadError as e:
      failures.extend(e.failures)
  if failures:
    if created and not os.listdir(data_dir):
      os.rmdir(data_dir)  # leave no trace of a download that fetched nothing
    names = ', '.join(n + '.gz' for n in missing)
    raise DownloadError(f'{title} could not be downloaded: {downloader.summarize(failures)}. Put {names} into '
                        f'{os.path.abspath(data_dir)}, or pass --data_dir=DIR pointing at them')
  return paths
