"""A run's output directory and the files in it.

    flags.json        the flags of the run (what `--eval_only` and a resumed run read back)
    metrics.csv       one row per epoch: METRICS_HEADER (the data set's name first)
    evaluation.json   the final test ELBO and log-likelihood estimate
    timings.json      wall time per phase (read by bench/)
    loss_curve.png    the loss curves
    checkpoints/      model, optimiser and step counter after each complete epoch (vae/run/checkpoints.py)
    tensorboard/      the same scalars, and the frames, for TensorBoard
    figs/<kind>/      the per-epoch frames; at the end <kind>.gif in the output directory itself
    export/           encoder.keras and decoder.keras

Every file is written atomically (vae/run/fileio.py), so a killed run leaves each file either old or new, never torn.
"""

import csv
import io
import json
import math
import os
import shutil

from vae.run.config import RESUME_KEYS, SETTINGS
from vae.commands.errors import OutputError, VAEError
from vae.run.fileio import atomic_path, write_text_atomic

DEFAULTS = {setting.name: setting.default for setting in SETTINGS}
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


FRESH_HINT = 'restore it from a copy, or pass --fresh to start over (this deletes the run\'s checkpoints, metrics and frames)'


def read_metrics(path, up_to_epoch=None):
  """The rows of an existing metrics.csv (for epochs 1..up_to_epoch, if given), checked: VAEError naming the
  file if it is not the one-row-per-epoch table this package writes."""
  text = _read_text(path)
  if text is None:
    return []
  try:
    reader = csv.DictReader(io.StringIO(text, newline=''))
    if tuple(reader.fieldnames or ()) != METRICS_HEADER:
      raise ValueError(f'its header is not {",".join(METRICS_HEADER)}')
    rows = []
    for number, row in enumerate(reader, start=1):
      if None in row or None in row.values():
        raise ValueError(f'row {number} does not have {len(METRICS_HEADER)} fields')
      rows.append({k: _parse(k, v) for k, v in row.items()})
      if rows[-1]['epoch'] != number:
        raise ValueError(f'row {number} is for epoch {rows[-1]["epoch"]}')
  except (ValueError, csv.Error) as e:
    raise VAEError(f'{path} is damaged ({e}); {FRESH_HINT}') from None
  return rows if up_to_epoch is None else rows[:up_to_epoch]


def read_saved_flags(paths, hint=FRESH_HINT):
  """The flags.json of a run as a dict, None if there is none; VAEError naming the file if it is damaged (not
  a JSON object, or a setting of the wrong type)."""
  from vae.run.config import RUN_SETTINGS

  text = _read_text(paths.flags)
  if text is None:
    return None
  try:
    saved = json.loads(text)
    if not isinstance(saved, dict):
      raise ValueError(f'it holds a JSON {type(saved).__name__}, not an object of flags')
    for name, value in saved.items():
      if name in RUN_SETTINGS and not _of_type(value, RUN_SETTINGS[name].type):
        raise ValueError(f'{name} is {json.dumps(value)}, not {_TYPE_NAMES[RUN_SETTINGS[name].type]}')
  except ValueError as e:
    raise VAEError(f'{paths.flags} is damaged ({e}); {hint}') from None
  return saved


def read_evaluation(paths):
  """evaluation.json as a dict, or None if it is missing or damaged (a run then writes it anew)."""
  try:
    evaluation = json.loads(_read_text(paths.evaluation) or 'null')
  except (ValueError, VAEError):
    return None
  return evaluation if isinstance(evaluation, dict) else None


_TYPE_NAMES = {int: 'an integer', float: 'a number', str: 'a string', bool: 'true or false'}


def _of_type(value, kind):
  if kind is bool:
    return isinstance(value, bool)
  if kind is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if kind is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  return isinstance(value, kind)


def _read_text(path):
  """The UTF-8 text of `path`, None if it does not exist; ValueError-free: a file that is not UTF-8 text is a
  VAEError naming it."""
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except FileNotFoundError:
    return None
  except OSError as e:
    raise VAEError(f'cannot read {path}: {e.strerror or e}') from None
  try:
    return data.decode('utf-8')
  except UnicodeDecodeError as e:
    raise VAEError(f'{path} is damaged (byte {e.start} is not UTF-8 text); {FRESH_HINT}') from None


def check_resumable(paths, flag_values):
  """Refuses to resume a checkpoint made with flags that change the model, the data or the random streams (the
  settings marked `resume` in vae/run/config.py)."""
  saved = read_saved_flags(paths) or {}
  for key in RESUME_KEYS:
    # A run saved before a setting existed was made with its default.
    made_with = saved.get(key, DEFAULTS[key])
    if key in flag_values and saved and made_with != flag_values[key]:
      raise VAEError(f'{paths.root} holds a run made with --{key}={made_with}, not {flag_values[key]}; '
                     f'rerun with the same flags to resume it, or pass --fresh to start over (this deletes its '
                     f'checkpoints, metrics and frames)')
  trained_on, now = saved.get('data_fingerprint'), flag_values.get('data_fingerprint')
  if saved and trained_on != now and (trained_on or now):
    raise VAEError(f'{paths.root} holds a run trained on other images than those in {flag_values.get("data_dir")} '
                   f'now (their files changed since); resume it on the same images, or pass --fresh to start over '
                   f'(this deletes its checkpoints, metrics and frames)')


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
  """One metrics.csv value; ValueError naming the column if it does not parse."""
  if key in ('dataset', 'objective'):
    return text
  try:
    return int(text) if key in ('train_k', 'epoch', 'step', 'active_units') else float(text)
  except ValueError:
    raise ValueError(f'{key} {text!r} is not a number') from None


def _format(value):
  if isinstance(value, float):
    return 'nan' if math.isnan(value) else f'{value:.6g}'
  return str(value)
