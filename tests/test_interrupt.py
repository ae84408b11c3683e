"""Stopping a real run any way a user can (Ctrl-C, a kill), a second run on the same directory, and resuming."""

import csv
import json
import os
import signal
import subprocess
import sys

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


# run.py as a terminal starts it, with SIGINT not ignored even when the test runner was started with it ignored
# (a child inherits an ignored signal, and a run leaves ignored signals alone, as `nohup` expects): reset in the
# child's Python before run.py starts, rather than with a preexec_fn in this process, which holds TensorFlow's
# threads.
AS_FROM_A_TERMINAL = ('import runpy, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); '
                      'sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")')


def start(args, output_dir, **pause):
  """run.py on `output_dir`, pausing itself as `pause` says: pause_after_epoch=N or pause_at_step=S."""
  env = user_env(**{f'VAE_TEST_{name.upper()}': str(value) for name, value in pause.items()})
  return subprocess.Popen([sys.executable, '-c', AS_FROM_A_TERMINAL, os.path.join(REPO_ROOT, 'run.py'), *args,
                           f'--output_dir={output_dir}'],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def end(process):
  """Ends a run the test started, stopped or not (SIGKILL also ends a stopped process)."""
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
  """Sends `signum` to the paused run, lets it go on, and returns its exit status and stderr lines."""
  process.send_signal(signum)
  process.send_signal(signal.SIGCONT)
  _, stderr = process.communicate(timeout=HANG_GUARD_S)
  return process.returncode, stderr.splitlines()


def test_each_stop_signal_a_second_run_and_a_kill_then_resuming_end_equal_to_an_uninterrupted_run(tmp_path):
  # One run directory, stopped in turn by each signal the README names (Ctrl-C, SIGUSR1 at an epoch's end, SIGTERM,
  # SIGHUP), then killed outright, and resumed after each. The CPU path does not matter here (the reruns of
  # tests/test_run.py cover both): the uninterrupted reference is trained in this process, the stopped run as a
  # user runs it. The run pauses itself at a known step or right after a known epoch's checkpoint, so that each
  # signal lands mid-run however fast or slow the machine is.
  mnist_dir = str(tmp_path / 'mnist')
  write_mnist(mnist_dir)
  num_epochs, updates = 3, 20  # two calls of ten compiled steps per epoch (vae/run/state.py)
  args = [f'--data_dir={mnist_dir}', f'--epochs={num_epochs}', f'--updates_per_epoch={updates}', '--batch_size=16',
          '--eval_k=2']  # fc/fc: the XLA path of the default run
  whole, stopped = tmp_path / 'whole', tmp_path / 'stopped'

  process = start(args, stopped, pause_at_step=10)
  try:
    # Ctrl-C halfway through epoch 1: the steps under way finish, the run saves at step 10 and exits 128 + 2.
    wait_until_paused(process)
    assert stop_with(process, signal.SIGINT) == (130, [stop_line(signal.SIGINT, 10, '10 of the 20 steps of epoch 1 '
                                                                 'done', stopped)])
    assert checkpointed_steps(stopped) == [10]

    # SIGUSR1 (a scheduler's warning before its time limit) as epoch 1's last call ends: the epoch is completed,
    # evaluated and checkpointed, and the run stops after it.
    process = start(args, stopped, pause_at_step=20)
    wait_until_paused(process)
    assert stop_with(process, signal.SIGUSR1) == (128 + signal.SIGUSR1,
                                                  [stop_line(signal.SIGUSR1, 20, 'after epoch 1 of 3', stopped)])
    assert checkpointed_steps(stopped) == [20, 10] and completed_epochs(stopped) == 1

    process = start(args, stopped, pause_at_step=30)
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
    process = start(args, stopped, pause_at_step=50)
    wait_until_paused(process)
    assert stop_with(process, signal.SIGHUP) == (129, [stop_line(signal.SIGHUP, 50, '10 of the 20 steps of epoch 3 '
                                                                 'done', stopped)])
    assert checkpointed_steps(stopped) == [50, 40]

    # Resumed at that step, then killed outright once the last epoch is checkpointed: nothing more is written.
    process = start(args, stopped, pause_after_epoch=3)
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
