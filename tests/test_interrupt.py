"""Stopping a real run any way a user can (Ctrl-C, a kill), a second run on the same directory, and resuming."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import tensorflow as tf

from vae import loop
from conftest import REPO_ROOT, Started, run_py, user_env, write_mnist

HANG_GUARD_S = 300  # waits are on events; this only ends a test that would otherwise hang


def completed_epochs(output_dir):
  try:
    with open(os.path.join(output_dir, 'metrics.csv')) as f:
      return len(list(csv.DictReader(f)))
  except FileNotFoundError:
    return 0


def wait_until_paused(process):
  """Returns once the run has stopped itself after the epoch its VAE_TEST_PAUSE_AFTER_EPOCH names
  (tests/known_data/sitecustomize.py): a state that lasts until the test continues or ends it, so no signal can
  arrive too late. Fails if the run ended instead; the guard only ends a test that would otherwise hang."""
  deadline = time.monotonic() + HANG_GUARD_S
  while True:
    pid, status = os.waitpid(process.pid, os.WUNTRACED | os.WNOHANG)
    if pid:
      assert os.WIFSTOPPED(status), f'the run ended (wait status {status}) before pausing mid-run'
      return
    assert time.monotonic() < deadline, 'timed out waiting for the run to pause'
    time.sleep(0.05)


def start(args, output_dir, pause_after_epoch):
  # Ctrl-C as in a terminal: SIGINT handled by default, even when the test runner was started with it ignored.
  return subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, 'run.py'), *args, f'--output_dir={output_dir}'],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=user_env(VAE_TEST_PAUSE_AFTER_EPOCH=str(pause_after_epoch)),
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def end(process):
  """Ends a run the test started, stopped or not (SIGKILL also ends a stopped process)."""
  if process.poll() is None:
    process.kill()
    process.communicate()


def checkpointed_epochs(output_dir, updates_per_epoch):
  """Epochs in the checkpoint a resumed run would start from (the one the checkpoint state file names)."""
  latest = tf.train.latest_checkpoint(os.path.join(output_dir, 'checkpoints'))
  return int(latest.rsplit('-', 1)[1]) // updates_per_epoch if latest else 0


def everything_a_run_wrote(output_dir):
  """{relative path: contents} of the files a finished run leaves, less what depends on the clock."""
  files = {}
  for root, _, names in os.walk(output_dir):
    for name in names:
      path = os.path.join(root, name)
      relative = os.path.relpath(path, output_dir)
      if relative.startswith(('checkpoints', 'tensorboard', 'export')) or name in ('timings.json', '.lock',
                                                                                  'flags.json'):
        continue
      if name == 'metrics.csv':
        files[relative] = [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(open(path))]
      elif name == 'evaluation.json':
        files[relative] = {k: v for k, v in json.load(open(path)).items() if k != 'seconds'}
      else:
        files[relative] = open(path, 'rb').read()
  return files


def test_a_second_run_ctrl_c_and_a_kill_then_resuming_end_equal_to_an_uninterrupted_run(tmp_path):
  # The CPU path does not matter here (the reruns of tests/test_run.py cover both): the uninterrupted reference
  # is trained in this process, the stopped run as a user runs it. The run stops itself right after a known
  # epoch's checkpoint, so that each signal lands mid-run however fast or slow the machine is.
  mnist_dir = str(tmp_path / 'mnist')
  write_mnist(mnist_dir)
  epochs, updates = 3, 2
  args = [f'--data_dir={mnist_dir}', f'--epochs={epochs}', f'--updates_per_epoch={updates}', '--batch_size=16',
          '--eval_k=2', '--decoder_architecture=conv']
  whole, stopped = tmp_path / 'whole', tmp_path / 'stopped'

  process = start(args, stopped, pause_after_epoch=1)
  second = None
  try:
    wait_until_paused(process)
    # While it holds the directory, a second run on it is refused, and the first goes on afterwards. The
    # uninterrupted reference trains in this process while the second one starts.
    second = Started([sys.executable, os.path.join(REPO_ROOT, 'run.py'), *args, f'--output_dir={stopped}'],
                     env=user_env())
    loop.run_training(loop.Config(data_dir=mnist_dir, output_dir=str(whole), epochs=epochs, updates_per_epoch=updates,
                           batch_size=16, eval_k=2, decoder_architecture='conv'), log=lambda *args: None)
    refused = second.finished()
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [f'error: another run is using {stopped}; wait for it to finish or '
                                           f'choose another --output_dir']
    assert process.poll() is None
    # Ctrl-C, delivered as the run continues right after its first checkpoint: exit 130, one line that counts
    # the checkpointed epochs.
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=HANG_GUARD_S)
    assert process.returncode == 130 and checkpointed_epochs(stopped, updates) == 1
    assert stderr.splitlines() == [f'error: interrupted; 1 of {epochs} epochs are complete and checkpointed in '
                                   f'{stopped}/checkpoints. Run the same command again to resume']

    # Resumed, then killed outright once its second epoch is checkpointed.
    process = start(args, stopped, pause_after_epoch=2)
    wait_until_paused(process)
    assert completed_epochs(stopped) == 2
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=HANG_GUARD_S)
  finally:
    end(process)
    if second:
      second.stop()
  assert checkpointed_epochs(stopped, updates) == 2

  finished = run_py(*args, f'--output_dir={stopped}')
  assert finished.returncode == 0, finished.stderr
  assert f'resuming after epoch 2 (step {2 * updates})' in finished.stdout
  expected, got = everything_a_run_wrote(whole), everything_a_run_wrote(stopped)
  assert sorted(got) == sorted(expected)
  assert {'metrics.csv', 'evaluation.json', 'spread.gif', 'canvas.gif',
          os.path.join('figs', 'canvas', f'epoch_{epochs:04d}.png')} <= set(got)
  for name in expected:
    assert got[name] == expected[name], name
