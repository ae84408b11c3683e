"""Stopping a real run any way a user can (Ctrl-C, a kill), a second run on the same directory, and resuming."""

import csv
import json
import os
import select
import signal
import subprocess
import sys
import time

import tensorflow as tf

from vae.run import checkpoints
from vae.run.config import Config
from conftest import train_run, REPO_ROOT, many_mains, user_env, wait_until_paused, write_mnist

HANG_GUARD_S = 300  # waits are on events; this only ends a test that would otherwise hang


def completed_epochs(output_dir):
  try:
    with open(os.path.join(output_dir, 'metrics.csv')) as f:
      return len(list(csv.DictReader(f)))
  except FileNotFoundError:
    return 0


# The stopped runs as a terminal starts them, one command line after another in one process (run.py's main, as
# tests/many_mains.py runs it: each command line as a fresh process would see it, its stderr captured), so that
# TensorFlow starts once for all of them. Each command's exit status and stderr come back as a line of JSON on
# stdout. The stop signals are reset to their defaults in the child's Python before the first command, as a
# terminal starts a command, rather than with a preexec_fn in this process, which holds TensorFlow's threads: a
# child inherits an ignored signal (SIGINT where the test runner was started in the background, SIGHUP under
# `nohup`), and a run leaves ignored signals alone, as `nohup` expects.
ONE_COMMAND_AFTER_ANOTHER = """
import json, signal, sys
for name in ('SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1'):
  signal.signal(getattr(signal, name), signal.SIG_DFL)
sys.path[:0] = [{tests!r}, {repo!r}]
from many_mains import many_mains
for arguments in json.loads(sys.argv[1]):
  status, stderr, _ = many_mains('run', [arguments])[0]
  print(json.dumps([status, stderr]), flush=True)
"""


def start(command_lines, **pause):
  """run.py's command lines one after another in one process, pausing as `pause` says: pause_after_epoch=N or
  pause_at_step='S1,S2,...'."""
  env = user_env(**{f'VAE_TEST_{name.upper()}': str(value) for name, value in pause.items()})
  code = ONE_COMMAND_AFTER_ANOTHER.format(tests=os.path.join(REPO_ROOT, 'tests'), repo=REPO_ROOT)
  # Started as `nohup pytest &` would start it, whatever this process was started with: with SIGHUP and SIGINT
  # ignored, which the child must undo for its runs to stop as a terminal's would.
  inherited = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGHUP, signal.SIGINT)}
  try:
    return subprocess.Popen([sys.executable, '-c', code, json.dumps(command_lines)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
  finally:
    for signum, handler in inherited.items():
      signal.signal(signum, handler)


def end(process):
  """Ends the process the test started, stopped or not (SIGKILL also ends a stopped process)."""
  if process.poll() is None:
    process.kill()
  process.communicate()


def checkpointed_steps(output_dir):
  """The steps of the checkpoints on disk, newest first (a resumed run starts from the first intact one)."""
  return [step for step, _ in checkpoints.on_disk(os.path.join(output_dir, 'checkpoints'))]


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


def stop_line(signum, step, where, output_dir):
  return (f'error: stopped by {signal.Signals(signum).name} at step {step} ({where}); the run is checkpointed there '
          f'in {output_dir}/checkpoints. Run the same command again to resume')


def stop_with(process, signum):
  """Sends `signum` to the paused run, lets it go on, and returns its command's exit status and stderr lines."""
  process.send_signal(signum)
  process.send_signal(signal.SIGCONT)
  deadline = time.monotonic() + HANG_GUARD_S
  while not select.select([process.stdout], [], [], 0.05)[0]:
    # Looked at, not reaped (WNOWAIT): a run the signal did not stop goes on to its next pause.
    seen = os.waitid(os.P_PID, process.pid, os.WSTOPPED | os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if seen is not None and seen.si_code == os.CLD_STOPPED and not select.select([process.stdout], [], [], 0)[0]:
      raise AssertionError(f'{signal.Signals(signum).name} did not stop the run: it went on to its next pause')
    assert time.monotonic() < deadline, 'timed out waiting for the stopped command to end'
  line = process.stdout.readline()
  if not line:
    _, stderr = process.communicate()
    raise AssertionError(f'the process ended (exit status {process.returncode}): {stderr[-2000:]}')
  status, stderr = json.loads(line)
  return status, stderr.splitlines()


def test_each_stop_signal_a_second_run_and_a_kill_then_resuming_end_equal_to_an_uninterrupted_run(tmp_path):
  # One run directory, stopped in turn by each signal the README names (Ctrl-C, SIGUSR1 at an epoch's end, SIGTERM,
  # SIGHUP), then killed outright, and resumed after each: five runs of the same command, one after another in one
  # process. The CPU path does not matter here (the reruns of tests/test_run.py cover both): the uninterrupted
  # reference is trained in this process. The run pauses itself at known steps and right after the last epoch's
  # checkpoint, so that each signal lands mid-run however fast or slow the machine is.
  mnist_dir = str(tmp_path / 'mnist')
  write_mnist(mnist_dir)
  num_epochs, updates = 3, 20  # two calls of ten compiled steps per epoch (vae/run/state.py)
  args = [f'--data_dir={mnist_dir}', f'--epochs={num_epochs}', f'--updates_per_epoch={updates}', '--batch_size=16',
          '--eval_k=2']  # fc/fc: the XLA path of the default run
  whole, stopped = tmp_path / 'whole', tmp_path / 'stopped'

  # Each run resumes where the one before stopped and pauses at the first of these steps it reaches (none pauses
  # at step 40 or 60), and the last one once its epoch 3 is checkpointed.
  process = start([[*args, f'--output_dir={stopped}']] * 5, pause_at_step='10,20,30,50', pause_after_epoch=3)
  try:
    # Ctrl-C halfway through epoch 1: the steps under way finish, the run saves at step 10 and exits 128 + 2.
    wait_until_paused(process)
    assert stop_with(process, signal.SIGINT) == (130, [stop_line(signal.SIGINT, 10, '10 of the 20 steps of epoch 1 '
                                                                 'done', stopped)])
    assert checkpointed_steps(stopped) == [10]

    # SIGUSR1 (a scheduler's warning before its time limit) as epoch 1's last call ends: the epoch is completed,
    # evaluated and checkpointed, and the run stops after it.
    wait_until_paused(process)
    assert stop_with(process, signal.SIGUSR1) == (128 + signal.SIGUSR1,
                                                  [stop_line(signal.SIGUSR1, 20, 'after epoch 1 of 3', stopped)])
    assert checkpointed_steps(stopped) == [20, 10] and completed_epochs(stopped) == 1

    wait_until_paused(process)
    # While it holds the directory, a second run on it (run.py's main, in this process) is refused, and the first
    # goes on afterwards. The uninterrupted reference trains in this process meanwhile.
    assert many_mains('run', [[*args, f'--output_dir={stopped}']]) == [
        (1, f'error: another run is using {stopped}; wait for it to finish or choose another --output_dir\n')]
    train_run(Config(data_dir=mnist_dir, output_dir=str(whole), epochs=num_epochs, updates_per_epoch=updates,
                     batch_size=16, eval_k=2), log=lambda *args: None)
    assert process.poll() is None
    # SIGTERM (a scheduler's time limit) halfway through epoch 2.
    assert stop_with(process, signal.SIGTERM) == (143, [stop_line(signal.SIGTERM, 30, '10 of the 20 steps of epoch 2 '
                                                                  'done', stopped)])
    assert checkpointed_steps(stopped) == [30, 20]

    # SIGHUP (the terminal closed) halfway through epoch 3, after epoch 2's checkpoint.
    wait_until_paused(process)
    assert stop_with(process, signal.SIGHUP) == (129, [stop_line(signal.SIGHUP, 50, '10 of the 20 steps of epoch 3 '
                                                                 'done', stopped)])
    assert checkpointed_steps(stopped) == [50, 40]

    # Resumed at that step, then killed outright once the last epoch is checkpointed: nothing more is written.
    wait_until_paused(process)
    assert completed_epochs(stopped) == 3
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=HANG_GUARD_S)
  finally:
    end(process)
  assert checkpointed_steps(stopped) == [60, 50] and not (stopped / 'evaluation.json').exists()

  # The last resume needs no signal: run.py's main, in this process.
  [(status, stderr, stdout)] = many_mains('run', [[*args, f'--output_dir={stopped}']], stdout=True)
  assert status == 0, stderr
  assert f'resuming after epoch 3 (step {3 * updates})' in stdout
  expected, got = everything_a_run_wrote(whole), everything_a_run_wrote(stopped)
  assert sorted(got) == sorted(expected)
  assert {'metrics.csv', 'evaluation.json', 'spread.gif', 'canvas.gif',
          os.path.join('figs', 'canvas', f'epoch_{num_epochs:04d}.png')} <= set(got)
  for name in expected:
    assert got[name] == expected[name], name
  reference, resumed = (tf.train.load_checkpoint(checkpoints.newest_intact(os.path.join(d, 'checkpoints'))[1])
                        for d in (whole, stopped))
  names = [n for n in reference.get_variable_to_shape_map() if n != '_CHECKPOINTABLE_OBJECT_GRAPH']
  assert sorted(names) == sorted(n for n in resumed.get_variable_to_shape_map() if n != '_CHECKPOINTABLE_OBJECT_GRAPH')
  for name in names:
    assert (reference.get_tensor(name) == resumed.get_tensor(name)).all(), name
