"""A run's checkpoints on disk, written, kept and opened.

A checkpoint is the pair of files `ckpt-STEP.index` and `ckpt-STEP.data-00000-of-00001` in the run's
`checkpoints/`, named by the global step it holds. What is on disk is the only record this package reads: the
`checkpoint` file TensorFlow's tools read (`tf.train.latest_checkpoint`) is written after every save for them,
but never consulted here, since a damaged directory can contradict it. So training, `--eval_only` and the resume
check always see the same list.

* `save` writes one with `tf.train.Checkpoint.write` (the data files first, the index that names them last), then
  deletes all but the newest `KEEP`; a save that fails removes what it left, TensorFlow's `*_temp` directory
  included, and keeps the older checkpoints.
* `newest_intact` opens the directory newest first: a checkpoint counts only if its index and every tensor in it
  can be read back. Each one passed over is reported in one line, and if there are checkpoint files but none is
  intact the run is refused with one line: a damaged directory is never taken for an empty one.
"""

import glob
import os
import re
import shutil

import tensorflow as tf

from vae.commands.errors import OutputError, VAEError
from vae.run.fileio import write_text_atomic

KEEP = 2
_INDEX = re.compile(r'^ckpt-(\d+)\.index$')


def prefix(directory, step):
  return os.path.join(directory, f'ckpt-{step}')


def on_disk(directory):
  """[(step, prefix)] of the checkpoints whose index is in `directory`, newest first."""
  try:
    names = os.listdir(directory)
  except FileNotFoundError:
    return []
  except OSError as e:
    raise VAEError(f'cannot read {directory}: {e.strerror or e}') from None
  steps = sorted((int(m.group(1)) for m in map(_INDEX.match, names) if m), reverse=True)
  return [(step, prefix(directory, step)) for step in steps]


def _steps_without_index(directory, indexed_steps):
  """The steps, newest first, of data files newer than the newest indexed checkpoint whose index is missing."""
  newest = max(indexed_steps, default=-1)
  data = re.compile(r'^ckpt-(\d+)\.data-')
  try:
    steps = {int(m.group(1)) for m in map(data.match, os.listdir(directory)) if m}
  except OSError:
    return []
  return sorted((step for step in steps if step > newest and step not in indexed_steps), reverse=True)


def holds_any(directory):
  """Whether `directory` holds any checkpoint file at all, intact or not."""
  return bool(glob.glob(os.path.join(glob.escape(directory), 'ckpt-*')))


def damage(checkpoint_prefix):
  """Why the checkpoint cannot be used, as a short phrase, or None if its index and every tensor read back."""
  try:
    reader = tf.train.load_checkpoint(checkpoint_prefix)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except Exception as e:  # noqa: BLE001  (whatever the reader raises, the files are not usable)
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return first_line[:200]
  return None


def newest_intact(directory, log=print):
  """(step, prefix) of the newest intact checkpoint in `directory`, or None if it holds no checkpoint files.

  Says in one line each which newer ones it passed over and why. Raises VAEError if there are checkpoint files
  but none of them is intact.
  """
  skipped = []
  indexed = on_disk(directory)
  for step in _steps_without_index(directory, [step for step, _ in indexed]):
    skipped.append(f'ckpt-{step}')
    log(f'skipped the damaged checkpoint {prefix(directory, step)} (its index file is missing)')
  for step, checkpoint_prefix in indexed:
    problem = damage(checkpoint_prefix)
    if problem is None:
      return step, checkpoint_prefix
    skipped.append(os.path.basename(checkpoint_prefix))
    log(f'skipped the damaged checkpoint {checkpoint_prefix} ({problem})')
  if skipped or holds_any(directory):
    found = ', '.join(skipped) if skipped else 'only files that are not checkpoints'
    raise VAEError(f'{directory} holds no intact checkpoint ({found}); restore its files from a copy, or pass '
                   f'--fresh to start over (this deletes the run\'s checkpoints, metrics and frames)')
  return None


def restore(checkpoint, checkpoint_prefix, partial=False):
  """Reads `checkpoint_prefix` into the objects of `checkpoint` (a `tf.train.Checkpoint`); every object must find
  its values there. `partial`: the checkpoint may hold more than `checkpoint` asks for (--eval_only reads the
  networks and not the optimiser). Raises VAEError with one line if they do not fit (TensorFlow's own warnings
  about the mismatch are below vae/commands/quiet.py's level)."""
  problem = None
  try:
    status = checkpoint.read(checkpoint_prefix)
    if partial:
      status.expect_partial()
    status.assert_existing_objects_matched()
  except (tf.errors.OpError, AssertionError, ValueError) as e:
    problem = (str(e).strip().splitlines() or [type(e).__name__])[0]
  if problem:  # raised here, not in the clause: the exception would keep TensorFlow's restore objects alive
    raise VAEError(f'the checkpoint {checkpoint_prefix} does not fit the model its flags.json describes '
                   f'({problem[:200]})')


def remove_temporaries(directory):
  """Removes what an interrupted or failed save left: TensorFlow's `ckpt-N_temp` directories."""
  for path in glob.glob(os.path.join(glob.escape(directory), 'ckpt-*_temp*')):
    shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _remove(path)


def save(checkpoint, directory, step):
  """Writes `checkpoint` as the checkpoint of `step`, then keeps only the newest KEEP. OutputError if it fails."""
  target = prefix(directory, step)
  try:
    os.makedirs(directory, exist_ok=True)
    checkpoint.write(target)
  except (tf.errors.OpError, OSError) as e:
    remove_temporaries(directory)
    for path in glob.glob(glob.escape(target) + '.*'):
      _remove(path)
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise OutputError(f'cannot write a checkpoint into {directory}: {reason}; the previous checkpoint is '
                      f'kept') from None
  for _, old in on_disk(directory)[KEEP:]:
    for path in glob.glob(glob.escape(old) + '.*'):
      _remove(path)
  # For TensorFlow's own tools (tf.train.latest_checkpoint); this package never reads it.
  kept = [os.path.basename(p) for _, p in reversed(on_disk(directory))]
  state = f'model_checkpoint_path: "{os.path.basename(target)}"\n' + ''.join(
      f'all_model_checkpoint_paths: "{name}"\n' for name in kept)
  try:
    write_text_atomic(os.path.join(directory, 'checkpoint'), state)
  except OutputError:
    pass


def _remove(path):
  try:
    os.remove(path)
  except OSError:
    pass
