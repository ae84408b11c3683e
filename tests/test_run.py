"""run.py end to end, as a user runs it: a subprocess, on tiny synthetic data, in a temporary directory."""

import csv
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from conftest import REPO_ROOT, write_mnist


def run(*args, cwd=None):
  """run.py as a user starts it: the test process's environment, less any TensorFlow log setting of its own."""
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'run.py'), *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


def metrics_without_time(path):
  with open(path) as f:
    return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(f)]


def test_a_short_run_writes_metrics_frames_and_gifs_and_nothing_on_stderr(tmp_path, mnist_dir, onednn):
  out = tmp_path / 'out'
  result = run(f'--data_dir={mnist_dir}', f'--output_dir={out}', '--epochs=2', '--updates_per_epoch=3',
               '--batch_size=16')
  assert result.returncode == 0, result.stderr
  assert result.stderr == ''  # no TensorFlow or absl start-up line, whichever CPU path
  assert 'epoch 2/2 [' in result.stdout and 'test elbo' in result.stdout
  rows = list(csv.DictReader(open(out / 'metrics.csv')))
  assert [int(r['epoch']) for r in rows] == [1, 2] and [int(r['step']) for r in rows] == [3, 6]
  assert all(float(r['test_elbo']) < 0 for r in rows)
  assert json.load(open(out / 'flags.json'))['updates_per_epoch'] == 3
  for kind in ('spread', 'canvas'):
    assert sorted(os.listdir(out / 'figs' / kind)) == ['epoch_0001.png', 'epoch_0002.png']
    with Image.open(out / f'{kind}.gif') as gif:
      assert gif.n_frames == 2


def test_conv_encoder_with_fc_decoder_and_no_viz(tmp_path, mnist_dir):
  out = tmp_path / 'out'
  result = run(f'--data_dir={mnist_dir}', f'--output_dir={out}', '--epochs=1', '--updates_per_epoch=2',
               '--batch_size=8', '--latent_dim=3', '--encoder_architecture=conv', '--do_viz=False')
  assert result.returncode == 0, result.stderr
  assert os.path.exists(out / 'metrics.csv')
  assert not os.path.exists(out / 'figs') and not os.path.exists(out / 'spread.gif')


@pytest.mark.parametrize('flag, message', [
    ('--latent_dim=0', '--latent_dim must be a positive integer, got 0'),
    ('--batch_size=-4', '--batch_size must be a positive integer, got -4'),
    ('--epochs=0', '--epochs must be a positive integer, got 0'),
    ('--updates_per_epoch=0', '--updates_per_epoch must be a positive integer, got 0'),
    ('--latent_dim=two', "flag --latent_dim=two: invalid literal for int() with base 10: 'two'"),
    ('--learning_rate=0', '--learning_rate must be a positive finite number, got 0.0'),
    ('--learning_rate=nan', '--learning_rate must be a positive finite number, got nan'),
    ('--learning_rate=inf', '--learning_rate must be a positive finite number, got inf'),
    ('--encoder_architecture=mlp', "--encoder_architecture must be one of conv, fc, got 'mlp'"),
    ('--decoder_architecture=CONV', "--decoder_architecture must be one of conv, fc, got 'CONV'"),
    ('--no_such_flag=1', "Unknown command line flag 'no_such_flag'"),
])
def test_bad_flags_give_one_clear_line_and_a_nonzero_exit(tmp_path, flag, message, onednn):
  result = run(flag, f'--output_dir={tmp_path / "out"}')
  assert result.returncode == 1
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines() == [f'error: {message}' + (
      ' (see python run.py --helpshort)' if message.startswith(('flag', 'Unknown')) else '')]
  assert not os.path.exists(tmp_path / 'out')  # rejected before any work


def test_a_corrupted_data_file_gives_one_line_and_leaves_the_data_alone(tmp_path, mnist_dir, onednn):
  path = os.path.join(mnist_dir, 't10k-images-idx3-ubyte.gz')
  content = open(path, 'rb').read()
  with open(path, 'wb') as f:
    f.write(content[:len(content) // 2])
  before = sorted(os.listdir(mnist_dir))
  result = run(f'--data_dir={mnist_dir}', f'--output_dir={tmp_path / "out"}', '--epochs=1')
  assert result.returncode == 1
  assert 'Traceback' not in result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: t10k-images-idx3-ubyte.gz is truncated or corrupted')
  assert sorted(os.listdir(mnist_dir)) == before
  assert open(path, 'rb').read() == content[:len(content) // 2]


def test_an_output_dir_that_is_a_file(tmp_path, mnist_dir):
  blocker = tmp_path / 'taken'
  blocker.write_text('keep me')
  result = run(f'--data_dir={mnist_dir}', f'--output_dir={blocker}', '--epochs=1')
  assert result.returncode == 1
  assert result.stderr.strip() == f'error: output directory {blocker} is a file, not a directory'
  assert blocker.read_text() == 'keep me'


@pytest.fixture(scope='module')
def full_size_data(tmp_path_factory):
  """60,000 + 1,000 synthetic images: a training set the size of MNIST's, which the nondeterminism needed."""
  directory = str(tmp_path_factory.mktemp('full') / 'mnist')
  write_mnist(directory, num_train=60000, num_test=1000, gz=False)
  return directory


@pytest.mark.parametrize('encoder, decoder', [('conv', 'conv'), ('fc', 'conv')])
def test_the_same_seed_repeats_a_convolutional_run_exactly(tmp_path, full_size_data, encoder, decoder, onednn):
  # Before the fix an on-graph training loop ran its ops concurrently and these runs differed within 20 steps.
  args = (f'--data_dir={full_size_data}', f'--encoder_architecture={encoder}', f'--decoder_architecture={decoder}',
          '--epochs=2', '--updates_per_epoch=20', '--do_viz=False', '--eval_k=1')
  first = run(*args, f'--output_dir={tmp_path / "first"}')
  second = run(*args, f'--output_dir={tmp_path / "second"}')
  assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
  assert first.stderr == second.stderr == ''
  assert metrics_without_time(tmp_path / 'first' / 'metrics.csv') == \
      metrics_without_time(tmp_path / 'second' / 'metrics.csv')
  estimates = [json.load(open(tmp_path / name / 'evaluation.json')) for name in ('first', 'second')]
  for key in ('test_elbo', 'test_log_likelihood'):  # full float precision, not the csv's six digits
    assert estimates[0][key] == estimates[1][key]
