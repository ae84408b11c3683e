"""Infrastructure, skip on a first reading: a run's output directory and the files in it.

    flags.json        the flags of the run (what `--eval_only` and a resumed run read back)
    metrics.csv       one row per epoch: METRICS_HEADER (the data set's name first)
    evaluation.json   the final test ELBO and log-likelihood estimate
    timings.json      wall time per phase (read by bench/)
    loss_curve.png    the loss curves
    checkpoints/      model, optimiser and step counter after each complete epoch
    tensorboard/      the same scalars, and the frames, for TensorBoard
    figs/<kind>/      the per-epoch frames; at the end <kind>.gif in the output directory itself
    export/           encoder.keras and decoder.keras

Every file is written atomically (vae/fileio.py), so a killed run leaves each file either old or new, never torn.
"""

import csv
import io
import json
import math
import os
import shutil

from vae.config import RESUME_KEYS
from vae.errors import OutputError, VAEError
from vae.fileio import atomic_path, write_text_atomic

METRICS_HEADER = ('dataset', 'objective', 'train_k', 'epoch', 'step', 'train_loss', 'test_elbo', 'test_rate',
                  'test_distortion', 'active_units', 'seconds')


class RunPaths:
  """Where a run's files live inside its output directory."""

  def __init__(self, output_dir):
    self.root = output_dir
    self.flags = os.path.join(output_dir, 'flags.json')
    self.metrics = os.path.join(output_dir, 'metrics.csv')
    self.loss_curve = os.path.join(output_dir, 'loss_curve.png')
    self.evaluation = os.path.join(output_dir, 'evaluation.json')
    self.timings = os.path.join(output_dir, 'timings.json')
    self.checkpoints = os.path.join(output_dir, 'checkpoints')
    self.tensorboard = os.path.join(output_dir, 'tensorboard')
    self.export = os.path.join(output_dir, 'export')
    self.figs = os.path.join(output_dir, 'figs')


def write_metrics(path, rows):
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(METRICS_HEADER)
  for row in rows:
    writer.writerow([_format(row[key]) for key in METRICS_HEADER])
  write_text_atomic(path, out.getvalue())


def write_json(path, value):
  write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + '\n')


def read_metrics(path, up_to_epoch):
  """The rows of an existing metrics.csv for epochs 1..up_to_epoch (a resumed run continues them)."""
  if up_to_epoch == 0 or not os.path.exists(path):
    return []
  with open(path, newline='') as f:
    rows = [{k: _parse(k, v) for k, v in row.items()} for row in csv.DictReader(f)]
  return [row for row in rows if row['epoch'] <= up_to_epoch]


def read_saved_flags(paths):
  if not os.path.exists(paths.flags):
    return None
  try:
    with open(paths.flags) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise VAEError(f'cannot read {paths.flags}: {e}') from None


def check_resumable(paths, flag_values):
  """Refuses to resume a checkpoint made with flags that change the model, the data or the random streams (the
  settings marked `resume` in vae/config.py)."""
  saved = read_saved_flags(paths) or {}
  for key in RESUME_KEYS:
    if key in saved and key in flag_values and saved[key] != flag_values[key]:
      raise VAEError(f'{paths.root} holds a run made with --{key}={saved[key]}, not {flag_values[key]}; '
                     f'rerun with the same flags to resume it, or pass --fresh to start over (this deletes its '
                     f'checkpoints, metrics and frames)')


def clear_run(paths):
  """--fresh: removes a previous run's checkpoints, metrics, summaries and frames from the output directory."""
  for directory in (paths.checkpoints, paths.tensorboard, paths.figs, paths.export):
    shutil.rmtree(directory, ignore_errors=True)
  for path in (paths.metrics, paths.evaluation, paths.loss_curve, paths.timings):
    if os.path.exists(path):
      os.remove(path)


def export_model(model, directory):
  """Saves the encoder and decoder as standard .keras files (architecture and weights), atomically."""
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as e:
    raise OutputError(f'cannot create {directory}: {e.strerror or e}') from None
  for name, part in (('encoder', model.encoder), ('decoder', model.decoder)):
    with atomic_path(os.path.join(directory, f'{name}.keras'), suffix='.keras') as tmp:
      part.save(tmp)


def _parse(key, text):
  if key in ('dataset', 'objective'):
    return text
  return int(text) if key in ('train_k', 'epoch', 'step', 'active_units') else float(text)


def _format(value):
  if isinstance(value, float):
    return 'nan' if math.isnan(value) else f'{value:.6g}'
  return str(value)
