r"""Many runs, one table: `vae-report DIR [DIR ...]` (or `python -m vae.commands.report`) prints a markdown table
of finished runs.

    vae-report runs/*                      # one row per setting, seeds grouped
    vae-report --group_seeds=false runs/*  # one row per run

It reads each run directory's flags.json, metrics.csv and evaluation.json, and prints one column per flag whose
value differs between the runs (the flags they all share are listed once, above the table), then the test ELBO,
the log-likelihood estimate with its k, the active units, and the wall time: the seconds of the epochs
(metrics.csv) plus those of the final estimate (evaluation.json), not counting start-up, gifs or export. Runs
that differ only in --seed are one row, each number as mean ± sample standard deviation (n - 1 in the
denominator) with n the number of seeds. A directory that is not a finished run (no evaluation.json yet, or not
a run at all) is named on stderr, one line each, and left out.

Nothing here needs TensorFlow: it reads files only.
"""

import json
import math
import os
import sys

from absl import flags

from vae.commands import cli
from vae.run import rundir
from vae.commands.errors import VAEError

COMMAND = cli.Command('python -m vae.commands.report',
                      'One markdown table of the finished runs in the directories named.',
                      arguments='DIR [DIR ...]', script='vae-report')
flags.DEFINE_boolean('group_seeds', True, 'One row for runs that differ only in their seed (mean ± sd, n).',
                     flag_values=COMMAND.flags)

# Flags that never change what a run computes, so they make no column of their own.
NOT_SETTINGS = ('output_dir', 'data_dir', 'fresh', 'eval_only', 'data_fingerprint')


EVALUATION_FIELDS = {'test_elbo': float, 'test_log_likelihood': float, 'eval_k': int, 'active_units': int}


def read_run(directory):
  """{'flags', 'evaluation', 'seconds', 'epochs'} of a finished run, or a string saying why it is not one."""
  paths = rundir.RunPaths(directory)
  if not os.path.isdir(directory):
    return 'not a directory'
  if not os.path.exists(paths.flags) or not os.path.exists(paths.metrics):
    return 'not a run directory (no flags.json or metrics.csv)'
  if not os.path.exists(paths.evaluation):
    return 'unfinished: no evaluation.json yet'
  try:
    run_flags = rundir.read_saved_flags(paths, hint='left out')
    rows = rundir.read_metrics(paths.metrics)
  except VAEError as e:
    return str(e).split('; ')[0]
  evaluation = rundir.read_evaluation(paths)
  if evaluation is None:
    return f'{paths.evaluation} is damaged (not a JSON object)'
  for name, kind in EVALUATION_FIELDS.items():
    value = evaluation.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
      return f'{paths.evaluation} is damaged ({name} is {json.dumps(value)}, not a number)'
  seconds = evaluation.get('seconds', 0.0)
  seconds = sum(row['seconds'] for row in rows) + (seconds if isinstance(seconds, (int, float)) else 0.0)
  # A run saved before a setting existed was made with its default, and is reported so.
  run_flags = {**{name: value for name, value in rundir.DEFAULTS.items() if name not in NOT_SETTINGS}, **run_flags}
  epochs = rows[-1]['epoch'] if rows else 0
  if epochs < int(run_flags.get('epochs', epochs)):
    return f'unfinished: {epochs} of {run_flags["epochs"]} epochs'
  return {'flags': run_flags, 'evaluation': evaluation, 'seconds': seconds, 'epochs': epochs}


def mean_sd(values, digits):
  """'m' for one value, 'm ± sd' (sample sd) for several."""
  if len(values) == 1:
    return f'{values[0]:.{digits}f}'
  mean = sum(values) / len(values)
  sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
  return f'{mean:.{digits}f} ± {sd:.{digits}f}'


def table(runs, group_seeds=True):
  """Markdown lines for runs {directory: read_run(...) result}."""
  names = sorted({key for run in runs.values() for key in run['flags']} - set(NOT_SETTINGS))
  varying = [n for n in names if len({json.dumps(run['flags'].get(n)) for run in runs.values()}) > 1]
  shared = [n for n in names if n not in varying]
  columns = [n for n in varying if not (group_seeds and n == 'seed')]
  groups = {}
  for directory, run in runs.items():
    key = tuple(json.dumps(run['flags'].get(n)) for n in columns) if group_seeds else (directory,)
    groups.setdefault(key, []).append((directory, run))
  first = next(iter(runs.values()))['flags']
  lines = []
  if shared:
    lines.append('Shared by every run: ' + ', '.join(f'--{n}={first.get(n)}' for n in shared) + '.')
    lines.append('')
  header = (['run'] if not group_seeds else []) + [f'--{n}' for n in columns] + (
      ['n'] if group_seeds else []) + ['test ELBO', 'log p(x) (IWAE)', 'k', 'active units', 'wall time (s)']
  lines.append('| ' + ' | '.join(header) + ' |')
  lines.append('|' + ' --- |' * len(header))
  for members in groups.values():
    runs_here = [run for _, run in members]
    evaluations = [run['evaluation'] for run in runs_here]
    ks = sorted({str(e.get('eval_k')) for e in evaluations})
    units = [float(e['active_units']) for e in evaluations]
    latent = runs_here[0]['flags'].get('latent_dim')
    cells = ([members[0][0]] if not group_seeds else []) + [
        str(runs_here[0]['flags'].get(n)) for n in columns] + ([str(len(members))] if group_seeds else []) + [
        mean_sd([e['test_elbo'] for e in evaluations], 2),
        mean_sd([e['test_log_likelihood'] for e in evaluations], 2),
        '/'.join(ks),
        mean_sd(units, 1 if len(units) > 1 else 0) + (f' / {latent}' if latent is not None else ''),
        mean_sd([run['seconds'] for run in runs_here], 0)]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return lines


def report(flag_values, directories):
  """The body of `python -m vae.commands.report`; returns the exit status."""
  if not directories:
    raise VAEError('name at least one run directory, e.g. vae-report runs/*')
  runs = {}
  for directory in directories:
    run = read_run(directory)
    if isinstance(run, str):
      print(f'skipped {directory}: {run}', file=sys.stderr)
    else:
      runs[directory] = run
  if not runs:
    raise VAEError('none of the directories holds a finished run')
  print('\n'.join(table(runs, flag_values.group_seeds)))
  return 0


def main(argv=None):
  return COMMAND.main(report, sys.argv if argv is None else argv)


if __name__ == '__main__':
  sys.exit(main())
