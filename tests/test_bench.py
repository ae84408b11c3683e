"""The benchmark script stays runnable (its figures are measured by hand, never asserted in tests)."""

import json
import platform
import os
import subprocess
import sys
import time

import pytest

from bench import machine, reference
from conftest import REPO_ROOT, Started, write_mnist


@pytest.fixture(scope='module')
def scripts(tmp_path_factory):
  """The two benchmark scripts, started together on tiny data: {'bench', 'profile'}: (Started, oneDNN setting)."""
  mnist_dir = str(tmp_path_factory.mktemp('bench') / 'mnist')
  write_mnist(mnist_dir)
  # One measurement child, under the oneDNN setting this process does not have (=1 turns it on on any x86 CPU, =0
  # off), so that the child's state can only come from the setting the benchmark hands it.
  setting = '0' if machine.onednn_enabled() else '1'
  started = {
      'bench': (Started([sys.executable, os.path.join(REPO_ROOT, 'bench', 'bench.py'), f'--data_dir={mnist_dir}',
                         '--skip_full_run', '--rounds=1', '--fc_steps=2', '--conv_steps=1', f'--onednn={setting}',
                         '--archs=fc', '--binarisation_latent_dims=3']), setting),
      'profile': (Started([sys.executable, os.path.join(REPO_ROOT, 'bench', 'profile_step.py'),
                           f'--data_dir={mnist_dir}', '--rounds=1', '--calls=1']), None),
  }
  yield started
  for process, _ in started.values():  # one a deselected test never waited for
    process.stop()


def test_bench_runs_and_prints_ratios(scripts):
  started, setting = scripts['bench']
  result = started.finished()
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert list(report['by_onednn_setting']) == [setting]
  if platform.machine().lower() in ('x86_64', 'amd64'):  # TF_ENABLE_ONEDNN_OPTS switches oneDNN on x86 only
    assert report['by_onednn_setting'][setting]['cpu']['onednn'] is (setting == '1')
  for r in report['by_onednn_setting'].values():
    assert r['fc_gemm_images_per_s'] > 0 and r['matmul_gflops'] > 0
    assert list(r['throughput']) == ['fc']
    for arch in ('fc',):
      figures = r['throughput'][arch]
      assert figures['ours_images_per_s'] > 0 and figures['reference_images_per_s'] > 0
      assert 0 < figures['fraction_of_ceiling']
    # Counted from the layers: 8.13 MFLOP per image for the fc model's matrix products.
    assert round(r['throughput']['fc']['training_mflop_per_image'], 2) == 8.13
    for latent_dim in ('3',):
      b = r['binarisation'][latent_dim]
      assert b['none'] > 0 and b['dynamic'] > 0
  assert 'Training throughput' in result.stdout and 'of ceiling' in result.stdout
  assert 'Dynamic binarisation against none' in result.stdout


def test_the_step_profile_runs_and_counts_the_real_networks_flops(scripts):
  result = scripts['profile'][0].finished()
  assert result.returncode == 0, result.stderr[-2000:]
  for line in ('matmuls alone', 'Adam update alone', 'full step', 'machine matmul rate'):
    assert line in result.stdout
  # 8.13 MFLOP per image x 128, counted from the layers of the network it built.
  assert "the step's matmuls: 1.04 GFLOP" in result.stdout


def test_the_peak_memory_is_the_childs_own_not_the_benchmarks(tmp_path):
  # In a fresh process that first makes itself big: the benchmark's own memory must not leak into the figure.
  code = f"""
import sys
sys.path.insert(0, {os.path.join(REPO_ROOT, 'bench')!r})
import bench
ballast = bytearray(600 * 2 ** 20)
ballast[::4096] = b'x' * len(ballast[::4096])
child = 'import time; b = bytearray(150 * 2 ** 20); b[::4096] = bytes(len(b[::4096])); time.sleep(1)'
print(bench.run_measuring_peak_memory([sys.executable, '-c', child], {str(tmp_path / 'log')!r}))
"""
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  returncode, peak_mb = eval(result.stdout.strip().splitlines()[-1])
  assert returncode == 0
  assert 150 < peak_mb < 400, peak_mb


def test_the_reference_loop_starts_and_times_its_first_step(tmp_path):
  # What bench.py's full benchmark runs in a fresh process to time the reference's start-up, run here.
  mnist_dir = str(tmp_path / 'mnist')
  write_mnist(mnist_dir)
  before = time.time()
  assert before < reference.first_step_time(mnist_dir, batch_size=16) < time.time()
