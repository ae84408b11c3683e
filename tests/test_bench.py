"""The benchmark script stays runnable (its figures are measured by hand, never asserted in tests)."""

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT


def test_bench_runs_and_prints_ratios(mnist_dir):
  result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'bench', 'bench.py'), f'--data_dir={mnist_dir}',
                           '--skip_full_run', '--rounds=1', '--fc_steps=2', '--conv_steps=1'],
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  for arch in ('fc', 'conv'):
    figures = report['throughput'][arch]
    assert figures['ours_images_per_s'] > 0 and figures['reference_images_per_s'] > 0
    assert abs(figures['ratio'] - figures['ours_images_per_s'] / figures['reference_images_per_s']) < 1e-9
  assert 'Training throughput' in result.stdout
