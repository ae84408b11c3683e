"""A run directory never loses work nor tells a wrong number: damaged checkpoints and run files, two writers, a
finished run, sizes and paths, signals at start-up and a closed stdout, as a user meets them through run.py,
vae.commands.explore and vae.commands.report: the exit status, the exact line, and the directory before and after."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from vae.run import checkpoints, signals
from vae.commands import report
from vae.run.fileio import RunLock
from conftest import train_run, REPO_ROOT, copy_run, many_mains, snapshot, tiny_config, user_env

TINY_FLAGS = ['--updates_per_epoch=4', '--batch_size=16', '--eval_k=3', '--learning_rate=1e-3']
FRESH = "restore it from a copy, or pass --fresh to start over (this deletes the run's checkpoints, metrics and frames)"


def cut(path, keep):
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:keep] if isinstance(keep, int) else data[:int(len(data) * keep)])


def write(path, text):
  with open(path, 'wb') as f:
    f.write(text if isinstance(text, bytes) else text.encode())


def as_an_earlier_version_wrote_it(run, config):
  """Rewrites the newest checkpoint of `run` as versions before the epoch's running loss was saved wrote it."""
  import keras
  import tensorflow as tf
  from vae.run.state import build_model
  model = build_model(config)
  optimizer = keras.optimizers.Adam(config.learning_rate)
  optimizer.build(model.trainable_variables)
  step = tf.Variable(0, dtype=tf.int64)
  old = tf.train.Checkpoint(encoder=model.encoder, decoder=model.decoder, optimizer=optimizer, step=step)
  directory = os.path.join(run, 'checkpoints')
  newest, prefix = checkpoints.newest_intact(directory)
  old.read(prefix).expect_partial()
  for name in os.listdir(directory):
    os.remove(os.path.join(directory, name))
  old.write(checkpoints.prefix(directory, newest))


def test_damaged_checkpoints_and_run_files_refused_or_survived_in_one_line(shared_run, tmp_path):
  data_dir, reference = shared_run('reference')  # 3 epochs of 4 steps: ckpt-8 and ckpt-12
  runs = {name: copy_run(reference, tmp_path / name) for name in (
      'state_file_cut', 'newest_data_cut', 'newest_data_cut_eval', 'newest_index_gone', 'all_damaged',
      'flags_list', 'flags_wrong_type', 'flags_other_model', 'metrics_cut', 'metrics_not_utf8', 'fewer_epochs',
      'finished', 'locked', 'earlier_version')}
  ckpt = {name: os.path.join(run, 'checkpoints') for name, run in runs.items()}
  cut(os.path.join(ckpt['state_file_cut'], 'checkpoint'), 40)
  for name in ('newest_data_cut', 'newest_data_cut_eval'):
    cut(os.path.join(ckpt[name], 'ckpt-12.data-00000-of-00001'), 0.5)
  os.remove(os.path.join(ckpt['newest_index_gone'], 'ckpt-12.index'))
  for step in (8, 12):
    cut(os.path.join(ckpt['all_damaged'], f'ckpt-{step}.data-00000-of-00001'), 0.5)
  write(os.path.join(runs['flags_list'], 'flags.json'), '[]')
  flags = json.load(open(os.path.join(reference, 'flags.json')))
  write(os.path.join(runs['flags_wrong_type'], 'flags.json'), json.dumps(dict(flags, latent_dim='2')))
  write(os.path.join(runs['flags_other_model'], 'flags.json'), json.dumps(dict(flags, latent_dim=3)))
  metrics = open(os.path.join(reference, 'metrics.csv'), 'rb').read()
  write(os.path.join(runs['metrics_cut'], 'metrics.csv'), metrics[:metrics.rindex(b'\n', 0, len(metrics) - 1) + 20])
  write(os.path.join(runs['metrics_not_utf8'], 'metrics.csv'), metrics.replace(b'mnist', b'mn\xffst', 1))
  as_an_earlier_version_wrote_it(runs['earlier_version'], tiny_config(data_dir, runs['earlier_version']))
  before = {name: snapshot(run, times=True) for name, run in runs.items()}

  def command(name, *extra):
    return [f'--data_dir={data_dir}', f'--output_dir={runs[name]}', *TINY_FLAGS, *extra]

  big = tmp_path / 'never_made'
  names = ['state_file_cut', 'newest_data_cut', 'newest_data_cut_eval', 'newest_index_gone', 'all_damaged',
           'flags_list', 'flags_wrong_type', 'flags_other_model', 'metrics_cut', 'metrics_not_utf8', 'fewer_epochs',
           'finished', 'batch', 'memory', 'int64', 'utf8', 'locked', 'earlier_version']
  cases = [
      command('state_file_cut', '--eval_only'),
      command('newest_data_cut', '--epochs=4'),
      command('newest_data_cut_eval', '--eval_only'),
      command('newest_index_gone', '--epochs=4', '--latent_dim=3'),
      command('all_damaged', '--epochs=4'),
      command('flags_list', '--eval_only'),
      command('flags_wrong_type', '--epochs=4'),
      command('flags_other_model', '--eval_only'),
      command('metrics_cut', '--epochs=4'),
      command('metrics_not_utf8', '--epochs=4'),
      command('fewer_epochs', '--epochs=1'),
      command('finished', '--epochs=3'),
      [f'--data_dir={data_dir}', f'--output_dir={big}', '--batch_size=100000000'],
      [f'--data_dir={data_dir}', f'--output_dir={big}', '--latent_dim=10000000'],
      [f'--data_dir={data_dir}', f'--output_dir={big}', '--batch_size=9223372036854775807'],
      [f'--data_dir={data_dir}', f'--output_dir={tmp_path}/caf\udce9'],
  ]
  with RunLock(runs['locked']):  # a training run holds it: --eval_only waits for nobody
    cases.append(command('locked', '--eval_only'))
    cases.append(command('earlier_version', '--epochs=4'))
    results = dict(zip(names, many_mains('run', cases, stdout=True)))

  def refused(name, line):
    status, stderr, _ = results[name]
    assert (status, stderr) == (1, f'error: {line}\n'), name
    if name in runs:
      assert snapshot(runs[name], times=True) == before[name], name  # nothing written, nothing touched

  # Survived: the newest intact checkpoint is used, and what was passed over is said on stdout.
  status, stderr, stdout = results['state_file_cut']
  assert (status, stderr) == (0, '') and f'restored {ckpt["state_file_cut"]}/ckpt-12 (step 12)' in stdout
  status, stderr, stdout = results['newest_data_cut']
  assert (status, stderr) == (0, '')
  assert f'skipped the damaged checkpoint {ckpt["newest_data_cut"]}/ckpt-12 (' in stdout
  assert 'resuming after epoch 2 (step 8)' in stdout
  rows = open(os.path.join(runs['newest_data_cut'], 'metrics.csv')).read().splitlines()
  # Epoch 3 trained again from ckpt-8 gives the row it had (but the seconds), and epoch 4 follows.
  assert len(rows) == 5
  assert [r.rsplit(',', 1)[0] for r in rows[:4]] == [r.rsplit(',', 1)[0] for r in metrics.decode().splitlines()]
  # flags.json as run.py writes it, imported (as here) or run as a script: every flag it has, so that a later
  # resume with any other value of a setting that must match is refused.
  from vae.run.config import SETTINGS
  written = json.load(open(os.path.join(runs['newest_data_cut'], 'flags.json')))
  assert sorted(written) == sorted([f.name for f in SETTINGS] + ['eval_only'])
  status, stderr, stdout = results['newest_data_cut_eval']
  assert (status, stderr) == (0, '') and f'restored {ckpt["newest_data_cut_eval"]}/ckpt-8 (step 8)' in stdout
  # Refused, with the directory as it was: the resume check sees the checkpoints the restore would use.
  status, stderr, stdout = results['newest_index_gone']
  assert f'skipped the damaged checkpoint {ckpt["newest_index_gone"]}/ckpt-12 (its index file is missing)' in stdout
  refused('newest_index_gone', f'{runs["newest_index_gone"]} holds a run made with --latent_dim=2, not 3; rerun with '
          f'the same flags to resume it, or pass --fresh to start over (this deletes its checkpoints, metrics and '
          f'frames)')
  refused('all_damaged', f'{ckpt["all_damaged"]} holds no intact checkpoint (ckpt-12, ckpt-8); restore its files from '
          f"a copy, or pass --fresh to start over (this deletes the run's checkpoints, metrics and frames)")
  refused('flags_list', f'{runs["flags_list"]}/flags.json is damaged (it holds a JSON list, not an object of flags); '
          f'restore it from a copy of the run')
  refused('flags_wrong_type', f'{runs["flags_wrong_type"]}/flags.json is damaged (latent_dim is "2", not an '
          f'integer); {FRESH}')
  status, stderr, _ = results['flags_other_model']
  assert status == 1 and stderr.startswith(f'error: the checkpoint {ckpt["flags_other_model"]}/ckpt-12 does not fit '
                                           f'the model its flags.json describes (')
  assert stderr.count('\n') == 1  # and none of TensorFlow's warnings about it
  refused('metrics_cut', f'{runs["metrics_cut"]}/metrics.csv is damaged (row 3 does not have 11 fields); {FRESH}')
  status, stderr, _ = results['metrics_not_utf8']
  assert status == 1 and stderr.startswith(f'error: {runs["metrics_not_utf8"]}/metrics.csv is damaged (byte ')
  assert stderr.endswith(f' is not UTF-8 text); {FRESH}\n')
  refused('fewer_epochs', f'{runs["fewer_epochs"]} holds a run trained for 12 steps (3 epochs of 4), more than '
          f'--epochs=1 asks for; pass --epochs=3 or more to continue it, or --fresh to start over')
  status, stderr, stdout = results['finished']
  assert (status, stderr) == (0, '') and f'{runs["finished"]} holds the finished run of 3 epochs: nothing to do' in stdout
  assert snapshot(runs['finished'], times=True) == before['finished']  # not a byte, not a time stamp
  # A checkpoint of an earlier version, without the running loss of an epoch in progress: it resumes as it did.
  status, stderr, stdout = results['earlier_version']
  assert (status, stderr) == (0, '') and 'resuming after epoch 3 (step 12)' in stdout
  refused('locked', f'another run is using {runs["locked"]}; wait for it to finish or choose another --output_dir')
  # Sizes and paths: refused before anything is written.
  refused('batch', '--batch_size=100000000 is larger than the training set (256 images); pass --batch_size=256 or '
          'less')
  status, stderr, _ = results['memory']
  assert status == 1 and stderr.startswith('error: this run needs at least ') and 'GiB of memory (estimated from ' \
      '--latent_dim=10000000, --batch_size=128 and --train_k=1), more than this machine\'s ' in stderr
  refused('int64', '--batch_size must be at most 2147483647, got 9223372036854775807')
  not_utf8 = os.fsencode(str(tmp_path) + '/caf\udce9')
  refused('utf8', f'--output_dir {not_utf8!r} is not UTF-8 text; choose a name that is')
  assert sorted(os.listdir(tmp_path)) == sorted(runs)  # no output directory was made for the refused ones


def test_explore_and_report_name_a_damaged_directory_and_go_on(shared_run, tmp_path, capsys):
  data_dir, reference = shared_run('reference')
  good, no_units, a_list, flags_list = (copy_run(reference, tmp_path / name) for name in (
      'good', 'no_units', 'a_list', 'flags_list'))
  evaluation = json.load(open(os.path.join(reference, 'evaluation.json')))
  del evaluation['active_units']
  write(os.path.join(no_units, 'evaluation.json'), json.dumps(evaluation))
  write(os.path.join(a_list, 'evaluation.json'), '[]')
  write(os.path.join(flags_list, 'flags.json'), '[]')
  assert report.main(['python -m vae.commands.report', good, no_units, a_list, flags_list]) == 0
  out, err = capsys.readouterr()
  assert err.splitlines() == [
      f'skipped {no_units}: {no_units}/evaluation.json is damaged (active_units is null, not a number)',
      f'skipped {a_list}: {a_list}/evaluation.json is damaged (not a JSON object)',
      f'skipped {flags_list}: {flags_list}/flags.json is damaged (it holds a JSON list, not an object of flags)']
  assert len([line for line in out.splitlines() if line.startswith('| ') and '---' not in line]) == 2  # one row
  (status, stderr), (pairs_status, pairs_stderr) = many_mains('vae.commands.explore', [
      [f'--output_dir={flags_list}'], [f'--output_dir={good}', '--pairs=40', f'--save_dir={tmp_path / "pictures"}']])
  assert (status, stderr) == (1, f'error: {flags_list}/flags.json is damaged (it holds a JSON list, not an object of '
                                 f'flags); restore it from a copy of the run\n')
  assert (pairs_status, pairs_stderr) == (1, 'error: --pairs=40 needs 80 distinct test images, and the test set has '
                                             '64; pass --pairs=32 or fewer\n')
  assert not (tmp_path / 'pictures').exists()


@pytest.fixture
def stop_signals_at_their_defaults():
  """The stop signals at their defaults during the test, as in a terminal: a suite started as a background job
  (`pytest &` in a script) inherits SIGINT ignored, which `signals.install` rightly leaves ignored."""
  previous = {signum: signal.getsignal(signum) for signum in signals.STOP_SIGNALS}
  for signum in previous:
    signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
  yield
  for signum, handler in previous.items():
    signal.signal(signum, handler)


def test_every_stop_signal_waits_inside_the_steps_and_stops_outside_them(stop_signals_at_their_defaults):
  for signum in signals.STOP_SIGNALS:
    with signals.install():
      with signals.deferred():
        os.kill(os.getpid(), signum)
        assert signals.pending() == signum  # recorded, not raised: the steps under way finish
        with pytest.raises(signals.Stopped) as second:
          os.kill(os.getpid(), signum)  # a second one does not wait
      assert second.value.exit_status == 128 + signum
      with pytest.raises(signals.Stopped) as outside:
        os.kill(os.getpid(), signum)
      assert str(outside.value) == f'stopped by {signal.Signals(signum).name}'
    assert signals.pending() is None


def test_ctrl_c_during_an_epochs_checkpoint_stops_at_the_epochs_end(shared_run, tmp_path, monkeypatch,
                                                                   stop_signals_at_their_defaults):
  from vae.run.state import TrainingState
  data_dir, reference = shared_run('reference')
  run = copy_run(reference, tmp_path / 'run')
  save = TrainingState.save

  def save_while_ctrl_c(trainer):
    os.kill(os.getpid(), signal.SIGINT)  # arrives while epoch 4 is being checkpointed
    save(trainer)

  monkeypatch.setattr(TrainingState, 'save', save_while_ctrl_c)
  with signals.install(), pytest.raises(signals.Stopped) as stopped:
    train_run(tiny_config(data_dir, run, epochs=5), log=lambda *args: None)
  assert stopped.value.exit_status == 130
  assert str(stopped.value) == (f'stopped by SIGINT at step 16 (after epoch 4 of 5); the run is checkpointed there in '
                                f'{run}/checkpoints. Run the same command again to resume')
  assert [step for step, _ in checkpoints.on_disk(os.path.join(run, 'checkpoints'))] == [16, 12]
  assert len(open(os.path.join(run, 'metrics.csv')).read().splitlines()) == 5  # header and 4 epochs


def test_a_signal_during_start_up_is_one_line(tmp_path, mnist_dir):
  # Stopped just before TensorFlow's import, then sent SIGTERM: one line, 128 + 15, nothing written. (A closed
  # stdout: tests/test_datasets.py's run from the default data directory.)
  early = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, 'run.py'), f'--data_dir={mnist_dir}',
                            f'--output_dir={tmp_path / "early"}'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=user_env(VAE_TEST_PAUSE_BEFORE_TENSORFLOW='1'))
  try:
    deadline = time.monotonic() + 120
    while True:  # waits for the pause; the deadline only ends a test that would otherwise hang
      pid, status = os.waitpid(early.pid, os.WUNTRACED | os.WNOHANG)
      if pid:
        assert os.WIFSTOPPED(status), status
        break
      assert time.monotonic() < deadline
      time.sleep(0.05)
    early.send_signal(signal.SIGTERM)
    early.send_signal(signal.SIGCONT)
    _, stderr = early.communicate(timeout=120)
    assert (early.returncode, stderr) == (143, 'error: stopped by SIGTERM\n')
    assert not (tmp_path / 'early').exists()
  finally:
    if early.poll() is None:
      early.kill()
      early.communicate()

