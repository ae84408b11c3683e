"""python -m vae.commands.report: many run directories, one markdown table."""

import json
import os
import subprocess
import sys

import pytest

from vae.commands import report
from conftest import REPO_ROOT, copy_run


@pytest.fixture(scope='module')
def runs(shared_run, tmp_path_factory):
  """Three finished tiny runs (seeds 0 and 1 of one setting, and one with --latent_dim=5), an unfinished one and a
  directory that is no run at all."""
  root = tmp_path_factory.mktemp('runs')
  for name, shared in (('seed0', 'reference'), ('seed1', 'seed1'), ('latent5', 'latent5')):
    copy_run(shared_run(shared)[1], root / name)
  os.makedirs(root / 'unfinished')
  for name in ('flags.json', 'metrics.csv'):
    os.link(root / 'seed0' / name, root / 'unfinished' / name)
  os.makedirs(root / 'photos')
  return root


def test_runs_that_differ_only_in_seed_are_one_row_with_mean_sd_and_n(runs):
  found = {name: report.read_run(str(runs / name)) for name in ('seed0', 'seed1', 'latent5')}
  lines = report.table(found)
  assert lines[0].startswith('Shared by every run: ') and '--batch_size=16' in lines[0]
  assert '--seed' not in lines[0] and '--latent_dim' not in lines[0]
  assert lines[2] == '| --latent_dim | n | test ELBO | log p(x) (IWAE) | k | active units | wall time (s) |'
  rows = {line.split(' | ')[0]: line for line in lines[4:]}
  assert set(rows) == {'| 2', '| 5'}
  seeds = [found[name]['evaluation']['test_elbo'] for name in ('seed0', 'seed1')]
  mean, sd = sum(seeds) / 2, abs(seeds[0] - seeds[1]) / 2 ** 0.5   # sample sd of two values
  assert rows['| 2'].split(' | ')[1:3] == ['2', f'{mean:.2f} ± {sd:.2f}']
  assert rows['| 5'].split(' | ')[1] == '1'
  assert rows['| 5'].split(' | ')[4] == '3'   # the k of the log-likelihood estimate


def test_the_command_names_and_skips_what_is_not_a_finished_run(runs):
  names = ['seed0', 'seed1', 'unfinished', 'photos', 'missing']
  result = subprocess.run([sys.executable, '-m', 'vae.commands.report', *(str(runs / n) for n in names)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  assert result.stderr.splitlines() == [
      f'skipped {runs / "unfinished"}: unfinished: no evaluation.json yet',
      f'skipped {runs / "photos"}: not a run directory (no flags.json or metrics.csv)',
      f'skipped {runs / "missing"}: not a directory']
  table = result.stdout.splitlines()
  assert table[2].startswith('| n | test ELBO |') and len(table) == 5  # the two seeds, one row
  per_run = subprocess.run([sys.executable, '-m', 'vae.commands.report', '--group_seeds=false', str(runs / 'seed0'),
                            str(runs / 'seed1')], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
  assert per_run.stdout.splitlines()[2] == ('| run | --seed | test ELBO | log p(x) (IWAE) | k | active units | '
                                            'wall time (s) |')
  evaluation = json.load(open(runs / 'seed1' / 'evaluation.json'))
  assert f'| 1 | {evaluation["test_elbo"]:.2f} |' in per_run.stdout


def test_no_finished_run_is_an_error(runs):
  result = subprocess.run([sys.executable, '-m', 'vae.commands.report', str(runs / 'photos')], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 1
  assert result.stderr.splitlines()[-1] == 'error: none of the directories holds a finished run'


def test_the_spread_of_three_seeds_is_their_sample_standard_deviation(runs):
  import statistics
  base = report.read_run(str(runs / 'seed0'))
  elbos, likelihoods = [-101.0, -104.5, -99.25], [-98.5, -97.0, -101.75]
  three = {f'seed{seed}': {**base, 'flags': {**base['flags'], 'seed': seed},
                           'evaluation': {**base['evaluation'], 'test_elbo': elbo, 'test_log_likelihood': ll}}
           for seed, elbo, ll in zip(range(3), elbos, likelihoods)}
  lines = report.table(three)
  assert lines[2].startswith('| n | test ELBO | log p(x) (IWAE) |')
  row = lines[4].split(' | ')
  assert row[0] == '| 3'
  assert row[1] == f'{statistics.mean(elbos):.2f} ± {statistics.stdev(elbos):.2f}'       # -101.58 ± 2.67
  assert row[2] == f'{statistics.mean(likelihoods):.2f} ± {statistics.stdev(likelihoods):.2f}'


def test_wall_time_active_units_and_mixed_k_cells_are_the_runs_own(runs, tmp_path, capsys):
  import csv
  import statistics
  seed0, seed1 = runs / 'seed0', copy_run(runs / 'seed1', tmp_path / 'seed1')
  evaluation = json.load(open(os.path.join(seed1, 'evaluation.json')))
  evaluation.update(eval_k=7, active_units=1)
  with open(os.path.join(seed1, 'evaluation.json'), 'w') as f:
    json.dump(evaluation, f)
  assert report.main(['python -m vae.commands.report', str(seed0), seed1]) == 0
  row = capsys.readouterr().out.splitlines()[4].strip('| ').split(' | ')
  # The wall time of a run: the seconds of its epochs in metrics.csv and of its final estimate.
  seconds = [sum(float(r['seconds']) for r in csv.DictReader(open(os.path.join(d, 'metrics.csv')))) +
             json.load(open(os.path.join(d, 'evaluation.json')))['seconds'] for d in (seed0, seed1)]
  units = [json.load(open(seed0 / 'evaluation.json'))['active_units'], 1]
  assert row[0] == '2'                       # n
  assert row[3] == '3/7'                     # the two estimates' k, both named
  assert row[4] == f'{statistics.mean(units):.1f} ± {statistics.stdev(units):.1f} / 2'
  assert row[5] == f'{statistics.mean(seconds):.0f} ± {statistics.stdev(seconds):.0f}'
  assert report.main(['python -m vae.commands.report']) == 1
  assert capsys.readouterr().err == 'error: name at least one run directory, e.g. vae-report runs/*\n'


def test_a_run_saved_before_a_setting_existed_is_reported_with_its_default(runs, tmp_path):
  old = copy_run(str(runs / 'seed1'), tmp_path / 'old')
  saved = json.load(open(os.path.join(old, 'flags.json')))
  del saved['likelihood']
  with open(os.path.join(old, 'flags.json'), 'w') as f:
    json.dump(saved, f)
  lines = report.table({name: report.read_run(path) for name, path in (('seed0', str(runs / 'seed0')),
                                                                      ('old', old))})
  assert '--likelihood=bernoulli' in lines[0]  # one group, the same likelihood: not a column of its own
  assert lines[2].startswith('| n | test ELBO')
