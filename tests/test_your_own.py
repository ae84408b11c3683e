"""A pair of networks of the user's own, from a file of theirs, through every command that builds networks."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys

from conftest import REPO_ROOT, many_mains, user_env, wait_until_paused, write_mnist

EXAMPLE = os.path.join(REPO_ROOT, 'examples', 'residual_mlp.py')
PAIR = ['--encoder_architecture=resmlp', '--decoder_architecture=resmlp']

WRONG = '''
import keras
from vae import networks

def one_output(latent_dim, image_shape):  # an encoder that forgot log_var
  x = keras.Input((784,))
  return keras.Model(x, keras.layers.Dense(latent_dim)(x))

networks.register('one_output', encoder=one_output)
'''
BROKEN = 'import keras\nraise RuntimeError("no GPU here")\n'
NOTHING = 'import keras\nWIDTH = 3\n'


def test_a_pair_from_a_file_of_ones_own_trains_stops_resumes_evaluates_and_explores(tmp_path):
  mnist = str(tmp_path / 'mnist')
  write_mnist(mnist)
  shutil.copy(EXAMPLE, tmp_path / 'my_pair.py')
  (tmp_path / 'wrong.py').write_text(WRONG)
  (tmp_path / 'broken.py').write_text(BROKEN)
  (tmp_path / 'nothing.py').write_text(NOTHING)
  run = tmp_path / 'run'
  common = [f'--data_dir={mnist}', '--epochs=2', '--updates_per_epoch=20', '--batch_size=16', '--eval_k=2', *PAIR]

  # Started from the user's directory with a relative path, stopped by SIGTERM at step 10 (mid-epoch 1).
  process = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, 'run.py'), '--network_module=my_pair.py',
                              *common, f'--output_dir={run}'], cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=user_env(VAE_TEST_PAUSE_AT_STEP='10'))
  try:
    wait_until_paused(process)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=300)
  finally:
    if process.poll() is None:
      process.kill()
  assert process.returncode == 143 and stderr.startswith('error: stopped by SIGTERM at step 10'), stderr
  saved = json.load(open(run / 'flags.json'))
  assert saved['network_module'] == str(tmp_path / 'my_pair.py')  # made absolute: found from any directory
  assert saved['encoder_architecture'] == 'resmlp'

  gone = tmp_path / 'gone'
  _copy_gone(run, gone)
  module = str(tmp_path / 'my_pair.py')
  results = many_mains('run', [
      ['--network_module=' + module, *common, f'--output_dir={run}'],                   # resumes and finishes
      ['--eval_only', '--eval_k=3', f'--output_dir={run}'],                            # rebuilds from flags.json
      [*common, f'--output_dir={run}'],                                                # the module left out
      ['--network_module=' + str(tmp_path / 'wrong.py'), *common, '--encoder_architecture=one_output',
       '--decoder_architecture=fc', f'--output_dir={tmp_path / "wrong_run"}'],
      ['--network_module=' + str(tmp_path / 'broken.py'), *common, f'--output_dir={tmp_path / "x"}'],
      ['--network_module=' + str(tmp_path / 'nothing.py'), *common, f'--output_dir={tmp_path / "x"}'],
      ['--network_module=no_such_module', *common, f'--output_dir={tmp_path / "x"}'],
      ['--eval_only', f'--output_dir={gone}'],
      {'module': 'vae.commands.explore', 'argv': [f'--output_dir={run}']},
  ], stdout=True)
  resumed, evaluated, left_out, wrong, broken, nothing, missing, moved, explored = results
  assert resumed[0] == 0 and resumed[1] == '', resumed[1]
  assert 'resuming at step 10 (10 of the 20 steps of epoch 1 done)' in resumed[2], resumed[2]
  rows = list(csv.DictReader(open(run / 'metrics.csv')))
  assert [int(r['step']) for r in rows] == [20, 40] and all(float(r['test_elbo']) < 0 for r in rows)
  assert evaluated[0] == 0 and evaluated[1] == '', evaluated[1]
  assert json.load(open(run / 'evaluation.json'))['eval_k'] == 3
  assert left_out[:2] == (1, 'error: --encoder_architecture=resmlp is not a registered encoder: one of fc, conv; a '
                             'network of your own is registered by the module --network_module names (the run in '
                             f'{run} was made with --network_module={module}: pass it again to resume it)\n')
  assert wrong[:2] == (1, "error: the encoder 'one_output' (from wrong) must take [B, 784] and return [mean, "
                          "log_var], each [B, 2]; it returns [B, 2]\n")
  assert not (tmp_path / 'wrong_run').exists()  # refused before anything was written
  assert broken[:2] == (1, f'error: --network_module={tmp_path / "broken.py"} failed to import: RuntimeError: no GPU '
                           f'here (at {tmp_path / "broken.py"}:2); fix the module and run the same command again\n')
  assert nothing[:2] == (1, f'error: --network_module={tmp_path / "nothing.py"} registered no network: call '
                            f'vae.networks.register(name, encoder=..., decoder=...) in it (see '
                            f'examples/residual_mlp.py)\n')
  assert missing[1].startswith('error: --network_module=no_such_module is no module importable from ')
  assert moved[:2] == (1, f'error: the run in {gone} was trained with --network_module={tmp_path / "moved.py"}, '
                          f'which is not a file (give a path to a .py file, or a module importable from the working '
                          f'directory); put the module back where it was\n')

  assert explored[:2] == (0, ''), explored
  assert sorted(os.listdir(run / 'explore')) == ['interpolation.gif', 'interpolations.png',
                                                 'mean_reconstructions.png', 'samples.png']


def _copy_gone(run, gone):
  """A copy of the run whose flags.json names a module that has since moved away."""
  shutil.copytree(run, gone, ignore=shutil.ignore_patterns('.lock'))
  flags = json.load(open(gone / 'flags.json'))
  flags['network_module'] = str(gone.parent / 'moved.py')
  (gone / 'flags.json').write_text(json.dumps(flags))


def write_images(root, sizes=None, colour_one=False, classes=('circle', 'square'), per_class=(6, 2)):
  """root/train/<class>/<i>.png and root/test/<class>/<i>.png: 20x20 grey shapes on noise (one RGB JPEG among the
  training images with `colour_one`); `sizes` {relative path: (H, W)} overrides single images' sizes."""
  from PIL import Image
  import numpy as np
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:20, :20]
  for split, count in zip(('train', 'test'), per_class):
    for label in classes:
      os.makedirs(root / split / label, exist_ok=True)
      for i in range(count):
        pixels = (rng.random((20, 20)) * 60).astype(np.uint8)
        disc, square = (yy - 10) ** 2 + (xx - 10) ** 2 < 30, (abs(yy - 10) < 5) & (abs(xx - 10) < 5)
        pixels[disc if label == 'circle' else square] = 255
        Image.fromarray(pixels).save(root / split / label / f'{i}.png')
  if colour_one:
    Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(root / 'train' / classes[0] / 'colour.jpg', quality=95)
  for relative, (height, width) in (sizes or {}).items():
    Image.fromarray(np.zeros((height, width), np.uint8)).save(root / relative)


def test_images_of_ones_own_train_record_their_fingerprint_and_every_bad_folder_is_one_line(tmp_path):
  import numpy as np
  from vae import data
  mine = tmp_path / 'mine'
  write_images(mine, colour_one=True)
  dataset = data.load('folder', str(mine))
  assert dataset.image_shape == (20, 20, 3) and dataset.class_names == ('circle', 'square')  # grey made colour
  assert dataset.train_images.shape == (13, 1200) and list(dataset.test_labels) == [0, 0, 1, 1]
  assert 0 <= dataset.train_images.min() and dataset.train_images.max() <= 1
  from PIL import Image
  np.testing.assert_array_equal(dataset.train_images[0].reshape(20, 20, 3)[..., 0],
                                (np.asarray(Image.open(mine / 'train/circle/0.png')) / np.float32(255)))
  for name, setup in (('no_test', lambda d: shutil.rmtree(d / 'test')),
                      ('empty', lambda d: [os.remove(p) for p in (d / 'test').rglob('*.png')]),
                      ('text', lambda d: (d / 'train' / 'square' / 'notes.txt').write_text('not an image')),
                      ('mixed', lambda d: write_images(d, sizes={'test/odd.png': (24, 20)}))):
    write_images(tmp_path / name)
    setup(tmp_path / name)
  shutil.copytree(mine, tmp_path / 'changed')
  shutil.copy(mine / 'train' / 'square' / '0.png', tmp_path / 'changed' / 'train' / 'square' / 'copy.png')
  common = ['--dataset=folder', '--epochs=1', '--updates_per_epoch=2', '--batch_size=4', '--eval_k=2']
  results = many_mains('run', [
      [*common, f'--data_dir={mine}', f'--output_dir={tmp_path / "run"}'],
      [*common, f'--data_dir={tmp_path / "no_test"}', f'--output_dir={tmp_path / "x"}'],
      [*common, f'--data_dir={tmp_path / "empty"}', f'--output_dir={tmp_path / "x"}'],
      [*common, f'--data_dir={tmp_path / "text"}', f'--output_dir={tmp_path / "x"}'],
      [*common, f'--data_dir={tmp_path / "mixed"}', f'--output_dir={tmp_path / "x"}'],
      [*common, f'--data_dir={tmp_path / "mixed"}', '--image_size=28,28', '--encoder_architecture=conv',
       '--decoder_architecture=conv', '--do_viz=False', f'--output_dir={tmp_path / "resized"}'],
      [*common, f'--data_dir={mine}', '--encoder_architecture=conv', f'--output_dir={tmp_path / "x"}'],
      [*common[:-2], '--batch_size=14', f'--data_dir={mine}', f'--output_dir={tmp_path / "x"}'],
      [*common, f'--output_dir={tmp_path / "x"}'],
      [*common[:1], '--epochs=2', *common[2:], f'--data_dir={tmp_path / "changed"}',
       f'--output_dir={tmp_path / "run"}'],
  ], stdout=True)
  trained, no_test, empty, text, mixed, resized, conv, batch, no_dir, changed = [r[:2] for r in results]
  assert trained == (0, ''), trained
  saved = json.load(open(tmp_path / 'run' / 'flags.json'))
  assert saved['dataset'] == 'folder' and saved['data_fingerprint'] == dataset.fingerprint
  assert sorted(os.listdir(tmp_path / 'run' / 'figs')) == ['canvas', 'spread']
  assert no_test == (1, f'error: --dataset=folder reads train/ and test/ folders of images from --data_dir, and '
                        f'{tmp_path / "no_test"} has no test/ folder\n')
  assert empty == (1, f'error: {tmp_path / "empty" / "test"} holds no images; put the test images there (in one '
                      f'subfolder per class, if they have classes)\n')
  assert text == (1, f'error: {tmp_path / "text" / "train" / "square" / "notes.txt"} is not an image TensorFlow can '
                     f'read (PNG, JPEG, GIF or BMP); remove it from {tmp_path / "text"}\n')
  assert mixed == (1, f'error: the images of {tmp_path / "mixed"} differ in size: train/circle/0.png is 20x20, '
                      f'test/odd.png is 24x20; pass --image_size=H,W to resize them all to one size\n')
  assert resized == (0, ''), resized
  assert json.load(open(tmp_path / 'resized' / 'evaluation.json'))['num_test_images'] == 5
  assert conv == (1, f'error: --encoder_architecture=conv does not fit the images of {mine}: the conv networks '
                     'take 28x28 or 32x32 images with 1 or 3 channels, not 20x20x3; the fc networks take any '
                     'shape\n')
  assert batch == (1, 'error: --batch_size=14 is larger than the training set (13 images); pass --batch_size=13 or '
                      'less\n')
  assert no_dir == (1, 'error: --dataset=folder needs --data_dir=DIR, the folder that holds your train/ and test/ '
                       'image folders\n')
  assert not (tmp_path / 'x').exists()

  # The images changed since (here: a copy of them with one more): resuming on them is refused, the run left as
  # it was.
  assert changed == (1, f'error: {tmp_path / "run"} holds a run trained on other images than those in '
                        f'{tmp_path / "changed"} now (their files changed since); resume it on the same images, or '
                        'pass --fresh to start over (this deletes its checkpoints, metrics and frames)\n')
  assert [int(row['epoch']) for row in csv.DictReader(open(tmp_path / 'run' / 'metrics.csv'))] == [1]
