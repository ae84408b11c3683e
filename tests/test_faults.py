"""Reliability: bad inputs and faults each end in one clear line, and nothing on disk is lost or half-written."""

import errno
import gzip
import os
import select
import struct
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from vae.run import fileio
from vae.run.config import Config
from vae.run import state
from vae.sources import idx
from vae.run.fileio import RunLock
from vae.commands.errors import DataError, OutputError, VAEError
from conftest import (train_run, REPO_ROOT, copy_run, many_mains, offline_here, refusing_port, snapshot,
                      synthetic_digits, tiny_config, write_mnist)

QUIET = lambda *args: None  # noqa: E731


# ------------------------------------------------------------------------------------------------ directories


def test_directories_that_cannot_be_used_give_one_line_and_stay_as_they_were(tmp_path):
  data_blocker, out_blocker, taken = tmp_path / 'mnist', tmp_path / 'file', tmp_path / 'taken'
  data_blocker.write_text('not a directory')
  out_blocker.write_text('x')
  taken.write_text('keep me')
  mnist_dir = str(tmp_path / 'digits')
  write_mnist(mnist_dir)
  empty = tmp_path / 'empty'
  empty.mkdir()
  with refusing_port() as port, offline_here(port):  # offline: every mirror refuses the connection
    results = many_mains('run', [
        [f'--data_dir={data_blocker}', f'--output_dir={tmp_path / "out"}'],
        [f'--data_dir={data_blocker}/mnist', f'--output_dir={tmp_path / "out"}'],
        [f'--data_dir={empty}', f'--output_dir={tmp_path / "out"}'],
        [f'--data_dir={mnist_dir}', f'--output_dir={out_blocker}/run', '--epochs=1'],
        [f'--data_dir={mnist_dir}', f'--output_dir={taken}', '--epochs=1']])
  files = ', '.join(name + '.gz' for name in idx.FILE_NAMES)
  assert results == [
      (1, f'error: --data_dir {data_blocker} is a file; point it at a directory holding (or to hold) the MNIST '
          f'files\n'),
      (1, f'error: cannot create data directory {data_blocker}/mnist: Not a directory\n'),
      (1, f'error: MNIST could not be downloaded: no mirror could be reached (Connection refused). Put {files} into '
          f'{empty}, or pass --data_dir=DIR pointing at them\n'),
      (1, f'error: output directory {out_blocker}/run cannot be written: Not a directory\n'),
      (1, f'error: output directory {taken} is a file, not a directory\n')]
  assert sorted(os.listdir(empty)) == []  # nothing half-downloaded left behind
  assert data_blocker.read_text() == 'not a directory' and not os.path.exists(tmp_path / 'out')
  assert out_blocker.read_text() == 'x' and taken.read_text() == 'keep me'


# ------------------------------------------------------------------------------------------------ data files


def _corrupt(mnist_dir, how):
  path = os.path.join(mnist_dir, 'train-images-idx3-ubyte.gz')
  if how == 'empty':
    open(path, 'wb').close()
  elif how == 'labels-for-images':
    idx.write_idx(path, np.zeros(256, np.uint8))
  elif how == 'raw-cut-short':
    os.remove(path)
    images, _ = synthetic_digits(256, seed=0)
    raw = os.path.join(mnist_dir, 'train-images-idx3-ubyte')
    idx.write_idx(raw, images)
    with open(raw, 'r+b') as f:
      f.truncate(1000)
  elif how == 'bad-label':
    labels = np.zeros(256, np.uint8)
    labels[7] = 200
    idx.write_idx(os.path.join(mnist_dir, 'train-labels-idx1-ubyte.gz'), labels)


BAD_DATA = [
    ('empty', 'train-images-idx3-ubyte.gz is not a gzip file'),
    ('labels-for-images', 'train-images-idx3-ubyte.gz should be an IDX images file (magic 0x00000803) but is a '
                          'labels file'),
    ('raw-cut-short', 'train-images-idx3-ubyte is 1,000 bytes but its header says 256 images'),
    ('bad-label', 'train-labels-idx1-ubyte.gz holds label 200 at index 7; MNIST labels are 0..9'),
    ('gz-cut-in-half', 't10k-images-idx3-ubyte.gz is truncated or corrupted'),
]


def test_bad_data_files_end_the_run_with_one_line_and_touch_nothing(tmp_path):
  cases = {}
  for how, message in BAD_DATA:
    mnist_dir, out = tmp_path / how / 'mnist', tmp_path / how / 'out'
    write_mnist(str(mnist_dir))
    if how == 'gz-cut-in-half':
      path = mnist_dir / 't10k-images-idx3-ubyte.gz'
      path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    else:
      _corrupt(str(mnist_dir), how)
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    cases[how] = (mnist_dir, out, message, snapshot(mnist_dir), snapshot(out))
  results = many_mains('run', [[f'--data_dir={d}', f'--output_dir={o}', '--epochs=1'] for d, o, *_ in cases.values()])
  for (how, (mnist_dir, out, message, data_before, out_before)), (status, stderr) in zip(cases.items(), results):
    lines = stderr.splitlines()
    assert status == 1 and len(lines) == 1 and lines[0].startswith(f'error: {message}'), (how, stderr)
    assert snapshot(mnist_dir) == data_before and snapshot(out) == out_before, how


def _mutations(content, rng):
  """Seeded random damage: bit flips, truncation, insertion, deletion, and header fields set to odd values."""
  content = bytearray(content)
  kind = rng.integers(6)
  if kind == 0:
    for _ in range(rng.integers(1, 8)):
      content[rng.integers(len(content))] ^= 1 << int(rng.integers(8))
  elif kind == 1:
    content = content[:rng.integers(len(content))]
  elif kind == 2:
    at = rng.integers(len(content) + 1)
    content[at:at] = rng.integers(0, 256, rng.integers(1, 50), dtype=np.uint8).tobytes()
  elif kind == 3:
    at = rng.integers(len(content))
    del content[at:at + rng.integers(1, 50)]
  elif kind == 4:
    field = rng.integers(4) * 4
    value = int(rng.choice([0, 1, 27, 28, 29, 2 ** 31 - 1, 2 ** 32 - 1, int(rng.integers(2 ** 32))]))
    content[field:field + 4] = struct.pack('>I', value)
  else:
    content = bytearray(rng.integers(0, 256, rng.integers(0, 64), dtype=np.uint8).tobytes())
  return bytes(content)


@pytest.mark.parametrize('kind', ['images', 'labels'])
def test_fuzzed_idx_files_only_ever_raise_data_error(tmp_path, kind):
  images, labels = synthetic_digits(8, seed=0)
  raw = struct.pack('>IIII', idx.IMAGES_MAGIC, 8, 28, 28) + images.tobytes() if kind == 'images' else \
      struct.pack('>II', idx.LABELS_MAGIC, 8) + labels.tobytes()
  rng = np.random.default_rng(2024)
  outcomes = {'ok': 0, 'DataError': 0}
  for case in range(200):
    compressed = case % 2 == 0
    mutated = _mutations(raw, rng)
    path = str(tmp_path / f'case{case}' ) + ('.gz' if compressed else '')
    with open(path, 'wb') as f:
      f.write(_mutations(gzip.compress(raw), rng) if compressed and case % 4 == 0 else
              gzip.compress(mutated) if compressed else mutated)
    try:
      array = idx.read_idx(path, kind)
      assert array.dtype == np.uint8 and array.shape[1:] == ((28, 28) if kind == 'images' else ())
      outcomes['ok'] += 1
    except DataError as e:
      assert '\n' not in str(e)
      outcomes['DataError'] += 1
    os.remove(path)
  assert outcomes['DataError'] > 100  # the mutations really do damage most files


# ------------------------------------------------------------------------------------------------ faults


def test_a_non_finite_loss_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint(shared_run, tmp_path,
                                                                                       monkeypatch):
  data_dir, reference = shared_run('reference')  # 3 epochs of 4 steps
  run = copy_run(reference, tmp_path / 'run')
  checkpoints = os.path.join(run, 'checkpoints')
  good = snapshot(checkpoints)
  real = state.engine.compile_steps

  def poisoned(*args, **kwargs):
    train_steps = real(*args, **kwargs)

    def from_step_14_on_nan(indices, first_step):
      step_numbers = int(first_step) + np.arange(len(indices))
      return train_steps(indices, first_step) * np.where(step_numbers >= 14, np.nan, 1.0).astype(np.float32)
    return from_step_14_on_nan

  monkeypatch.setattr(state.engine, 'compile_steps', poisoned)
  with pytest.raises(VAEError, match=r'the training loss became nan at epoch 4/5, step 15; the last checkpoint '
                                     r'\(before this epoch\) is kept'):
    train_run(tiny_config(data_dir, run, epochs=5), log=QUIET)
  assert snapshot(checkpoints) == good
  assert tf.train.latest_checkpoint(checkpoints).endswith('ckpt-12')


def test_an_absurd_learning_rate_is_caught_as_a_non_finite_loss(tmp_path, mnist_dir):
  config = Config(data_dir=mnist_dir, output_dir=str(tmp_path), epochs=2, updates_per_epoch=20, batch_size=16,
                       learning_rate=1e30, do_viz=False)
  with pytest.raises(VAEError, match=r'^the training loss became (nan|inf|-inf) at epoch 1/2, step \d+; the last '
                                     r'checkpoint \(before this epoch\) is kept. Try a smaller --learning_rate$'):
    train_run(config, log=QUIET)


def test_a_failed_write_raises_a_clear_error_and_keeps_the_previous_file(tmp_path, monkeypatch):
  target = tmp_path / 'metrics.csv'
  fileio.write_text_atomic(str(target), 'old complete contents\n')

  def disk_full(fd):
    raise OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr(fileio.os, 'fsync', disk_full)
  with pytest.raises(OutputError, match=f'cannot write {target}: No space left on device'):
    fileio.write_text_atomic(str(target), 'new contents')
  assert target.read_text() == 'old complete contents\n'
  assert os.listdir(tmp_path) == ['metrics.csv']  # no temporary file left behind


def test_disk_full_during_a_run_keeps_metrics_frames_and_checkpoint_of_the_last_epoch(shared_run, tmp_path,
                                                                                   monkeypatch):
  data_dir, reference = shared_run('reference')
  run = copy_run(reference, tmp_path / 'run')
  before = snapshot(run)
  calls = []

  def disk_full(fd):  # flags.json still fits; the disk fills up during epoch 4
    calls.append(fd)
    if len(calls) > 1:
      raise OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr(fileio.os, 'fsync', disk_full)
  with pytest.raises(OutputError, match='No space left on device'):
    train_run(tiny_config(data_dir, run, epochs=4), log=QUIET)
  after = snapshot(run)
  for name in ('metrics.csv', 'spread.gif', 'canvas.gif', os.path.join('figs', 'canvas', 'epoch_0003.png')):
    assert after[name] == before[name]
  assert tf.train.latest_checkpoint(os.path.join(run, 'checkpoints')).endswith('ckpt-12')


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(shared_run, tmp_path, monkeypatch):
  data_dir, reference = shared_run('reference')
  run = copy_run(reference, tmp_path / 'run')

  def disk_full(self, file_prefix, *args, **kwargs):
    # As TensorFlow's sharded save fails on a full disk: its temporary directory and a part file are left.
    os.makedirs(f'{file_prefix}_temp', exist_ok=True)
    open(os.path.join(f'{file_prefix}_temp', 'part-00000-of-00001.data-00000-of-00001'), 'wb').write(b'x' * 100)
    raise tf.errors.ResourceExhaustedError(None, None, 'No space left on device')

  monkeypatch.setattr(tf.train.Checkpoint, 'write', disk_full)
  with pytest.raises(OutputError, match=r'cannot write a checkpoint into .*No space left on device; the previous '
                                        r'checkpoint is kept'):
    train_run(tiny_config(data_dir, run, epochs=4), log=QUIET)
  assert sorted(os.listdir(os.path.join(run, 'checkpoints'))) == sorted(os.listdir(os.path.join(reference,
                                                                                                  'checkpoints')))
  assert tf.train.latest_checkpoint(os.path.join(run, 'checkpoints')).endswith('ckpt-12')


def test_the_lock_of_a_killed_run_does_not_stick(tmp_path):
  holder = subprocess.Popen([sys.executable, '-c', (
      f'import sys, time; sys.path.insert(0, {REPO_ROOT!r}); from vae.run.fileio import RunLock; '
      f'lock = RunLock({str(tmp_path)!r}).__enter__(); print("locked", flush=True); time.sleep(600)')],
      stdout=subprocess.PIPE, text=True)
  try:
    ready, _, _ = select.select([holder.stdout], [], [], 120)  # waits for the event; the timeout guards a hang
    assert ready and holder.stdout.readline().strip() == 'locked'
    with pytest.raises(OutputError, match='another run is using'):
      RunLock(str(tmp_path)).__enter__()
  finally:
    holder.kill()
    holder.wait()
  with RunLock(str(tmp_path)):  # the operating system released it with the process
    pass
