"""Images of your own: `--dataset=folder --data_dir=DIR`, with DIR holding `train/` and `test/`.

Each split is every image file under its folder, at any depth, in sorted path order; files and folders whose
names start with "." are skipped. TensorFlow decodes them (`tf.io.decode_image`: PNG, JPEG, GIF's first frame,
BMP), grey or colour: an alpha channel is dropped, and when any image is in colour the grey ones are made colour
too. The first level of subfolders names the classes, for the spread's colours (`train/cat/1.png` is a cat);
images directly in a split's folder belong to a class "unlabelled". All images must have one size, unless
`image_size` = (H, W) resizes every one (bilinear, with antialiasing, as `tf.image.resize` does). Pixels are
scaled to [0, 1] and flattened, as for every other data set.

The fingerprint is the SHA-256 of every file's path (relative to DIR) and bytes: recorded with a run, so that
resuming it on images that changed is refused.
"""

import hashlib
import os

import numpy as np

from vae.commands.errors import DataError
from vae.preprocess import Dataset

SPLITS = ('train', 'test')
UNLABELLED = 'unlabelled'


def image_files(split_dir):
  """[(relative path, class folder or None)] of every file under `split_dir`, sorted, hidden ones skipped."""
  found = []
  for root, folders, names in os.walk(split_dir):
    folders[:] = sorted(f for f in folders if not f.startswith('.'))
    for name in sorted(names):
      if name.startswith('.'):
        continue
      relative = os.path.relpath(os.path.join(root, name), split_dir)
      parts = relative.split(os.sep)
      found.append((relative, parts[0] if len(parts) > 1 else None))
  return found


def load(data_dir, image_size=None):
  """The images under `data_dir`/train and `data_dir`/test as a `vae.preprocess.Dataset` named 'folder', with
  its `fingerprint`; DataError with one line for a missing or empty split, a file that is not an image, or
  images of different sizes without `image_size`."""
  import tensorflow as tf

  files = {}
  for split in SPLITS:
    split_dir = os.path.join(data_dir, split)
    if not os.path.isdir(split_dir):
      raise DataError(f'--dataset=folder reads {split}/ and test/ folders of images from --data_dir, and '
                      f'{data_dir} has no {split}/ folder' if split == 'train' else
                      f'--dataset=folder reads train/ and {split}/ folders of images from --data_dir, and '
                      f'{data_dir} has no {split}/ folder')
    files[split] = image_files(split_dir)
    if not files[split]:
      raise DataError(f'{split_dir} holds no images; put the {split} images there (in one subfolder per class, '
                      f'if they have classes)')
  classes = sorted({folder or UNLABELLED for split in SPLITS for _, folder in files[split]})
  digest = hashlib.sha256()
  decoded = {}
  for split in SPLITS:
    images = []
    for relative, _ in files[split]:
      path = os.path.join(data_dir, split, relative)
      with open(path, 'rb') as f:
        contents = f.read()
      digest.update(f'{split}/{relative}\0{len(contents)}\0'.encode('utf-8', 'surrogateescape'))
      digest.update(contents)
      try:
        image = tf.io.decode_image(contents, expand_animations=False, dtype=tf.uint8).numpy()
      except (tf.errors.InvalidArgumentError, ValueError):
        raise DataError(f'{path} is not an image TensorFlow can read (PNG, JPEG, GIF or BMP); remove it from '
                        f'{data_dir}') from None
      channels = image.shape[-1]
      images.append(image[..., :1] if channels == 2 else image[..., :3] if channels == 4 else image)
    decoded[split] = images
  colour = any(image.shape[-1] == 3 for split in SPLITS for image in decoded[split])
  arrays = {}
  first = None
  for split in SPLITS:
    out = []
    for (relative, _), image in zip(files[split], decoded[split]):
      if colour and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
      if image_size:
        image = tf.image.resize(image, image_size, antialias=True).numpy()
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
      elif first is None:
        first = (f'{split}/{relative}', image.shape)
      elif image.shape[:2] != first[1][:2]:
        raise DataError(f'the images of {data_dir} differ in size: {first[0]} is {first[1][0]}x{first[1][1]}, '
                        f'{split}/{relative} is {image.shape[0]}x{image.shape[1]}; pass --image_size=H,W to resize '
                        f'them all to one size')
      out.append(image)
    arrays[split] = np.stack(out)
  image_shape = tuple(int(n) for n in arrays['train'].shape[1:])

  def flat(split):
    return arrays[split].reshape(len(arrays[split]), -1).astype(np.float32) / 255.0

  def labels(split):
    return np.array([classes.index(folder or UNLABELLED) for _, folder in files[split]], np.int64)

  return Dataset(flat('train'), labels('train'), flat('test'), labels('test'), image_shape=image_shape,
                 class_names=tuple(classes), name='folder', fingerprint=digest.hexdigest())
