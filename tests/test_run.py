"""run.py end to end, as a user runs it: subprocesses, on tiny synthetic data, in temporary directories."""

import csv
import json
import os
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import REPO_ROOT, Started, many_mains, unexpected_stderr, user_env, write_mnist


def metrics_without_time(path):
  with open(path) as f:
    return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(f)]


EPOCHS, UPDATES = 3, 2
RERUNS = textwrap.dedent('''
    import io, sys
    sys.path.insert(0, {repo!r})
    from vae.commands import run  # the command itself, which turns on TensorFlow's deterministic kernels
    for encoder, decoder in {pairs!r}:
      for attempt in ('first', 'second'):
        out = {out!r} + f'/{{encoder}}-{{decoder}}-{{attempt}}'
        sys.stdout = io.StringIO()  # the progress bars and the run's lines
        status = run.main(['run.py', '--data_dir={data}', f'--output_dir={{out}}',
                           f'--encoder_architecture={{encoder}}', f'--decoder_architecture={{decoder}}',
                           '--epochs={epochs}', '--updates_per_epoch={updates}', '--do_viz=False', '--eval_k=1'])
        sys.stdout = sys.__stdout__
        assert status == 0, status
    from tensorflow.python.framework import config
    print('done' if config.is_op_determinism_enabled() else 'run.py left op determinism off')
''')


def checkpointed_values(run_dir):
  """{name: array} of every value in a run's latest checkpoint: weights, optimiser moments, step (not the object
  graph, which holds Keras's layer names, numbered in the order layers were made in the process)."""
  reader = tf.train.load_checkpoint(os.path.join(run_dir, 'checkpoints'))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name != '_CHECKPOINTABLE_OBJECT_GRAPH'}


# conv/conv under oneDNN on (this CPU's default, where an on-graph conv loop was seen to differ between runs), each
# mixed pair under one of the two settings.
PAIRS = {'0': [('fc', 'conv')], '1': [('conv', 'conv'), ('conv', 'fc')]}


SETTINGS = pytest.mark.parametrize('setting', ['0', '1'], ids=['onednn-off', 'onednn-on'])


@pytest.fixture(scope='module', autouse=True)
def started(tmp_path_factory):
  """Every slow process of this file, started together as they mostly use one core each (start-up, tracing):
  {(kind, TF_ENABLE_ONEDNN_OPTS setting): (Started, directory)} with kind 'short' (a short run.py run, in
  directory/out) or 'reruns' (each of PAIRS[setting] trained twice, in directory/<pair>-first and -second), and
  {(kind, None): (Started, None)} for the shell commands 'latent_dim=0', 'latent_dim=two' and 'helpfull'."""
  processes = {}
  for kind, arguments in (('latent_dim=0', ['--latent_dim=0', f'--output_dir={tmp_path_factory.mktemp("bad")}/out']),
                          ('latent_dim=two', ['--latent_dim=two']), ('helpfull', ['--helpfull'])):
    processes[kind, None] = (Started([sys.executable, os.path.join(REPO_ROOT, 'run.py'), *arguments],
                                     env=user_env()), None)
  for setting in ('0', '1'):
    root = tmp_path_factory.mktemp(f'short-onednn{setting}')
    write_mnist(str(root / 'mnist'))
    processes['short', setting] = (Started(
        [sys.executable, os.path.join(REPO_ROOT, 'run.py'), f'--data_dir={root / "mnist"}',
         f'--output_dir={root / "out"}', '--epochs=2', '--updates_per_epoch=3', '--batch_size=16'],
        env=user_env(TF_ENABLE_ONEDNN_OPTS=setting)), root)
    root = tmp_path_factory.mktemp(f'reruns-onednn{setting}')
    write_mnist(str(root / 'mnist'))
    code = RERUNS.format(repo=REPO_ROOT, out=str(root), data=root / 'mnist', pairs=PAIRS[setting], epochs=EPOCHS,
                         updates=UPDATES)
    processes['reruns', setting] = (Started([sys.executable, '-c', code],
                                            env=user_env(TF_ENABLE_ONEDNN_OPTS=setting)), root)
  yield processes
  for process, _ in processes.values():  # any that a deselected test never waited for
    process.stop()


@SETTINGS
def test_a_short_run_writes_metrics_frames_and_gifs_and_nothing_on_stderr(started, setting):
  # Both CPU paths: with oneDNN on TensorFlow prints start-up lines of its own, which must not reach the user.
  process, root = started['short', setting]
  result = process.finished()
  out = root / 'out'
  assert result.returncode == 0, result.stderr
  assert unexpected_stderr(result.stderr) == []  # no line of ours, no TensorFlow start-up line, either CPU path
  assert 'epoch 2/2 [' in result.stdout and 'test elbo' in result.stdout
  rows = list(csv.DictReader(open(out / 'metrics.csv')))
  assert [int(r['epoch']) for r in rows] == [1, 2] and [int(r['step']) for r in rows] == [3, 6]
  assert all(float(r['test_elbo']) < 0 for r in rows)
  assert json.load(open(out / 'flags.json'))['updates_per_epoch'] == 3
  for kind in ('spread', 'canvas'):
    assert sorted(os.listdir(out / 'figs' / kind)) == ['epoch_0001.png', 'epoch_0002.png']
  with Image.open(out / 'spread.gif') as gif:
    assert gif.n_frames == 2
  with Image.open(out / 'canvas.gif') as gif:  # grey frames within a few levels of each other may be merged
    durations = []
    for i in range(gif.n_frames):
      gif.seek(i)
      durations.append(gif.info['duration'])
  assert sum(durations) == 10000 and len(durations) in (1, 2)


# Every refusal that needs no training, with its exact line: (command line, message).
REFUSALS = [
    ('--latent_dim=0', '--latent_dim must be a positive integer, got 0'),
    ('--batch_size=-4', '--batch_size must be a positive integer, got -4'),
    ('--epochs=0', '--epochs must be a positive integer, got 0'),
    ('--updates_per_epoch=0', '--updates_per_epoch must be a positive integer, got 0'),
    ('--eval_k=0', '--eval_k must be a positive integer, got 0'),
    ('--train_k=0', '--train_k must be a positive integer, got 0'),
    ('--latent_dim=two', "flag --latent_dim=two: invalid literal for int() with base 10: 'two' "
                         "(see python run.py --help)"),
    ('--batch_size=1.5', "flag --batch_size=1.5: invalid literal for int() with base 10: '1.5' "
                         "(see python run.py --help)"),
    ('--learning_rate=0', '--learning_rate must be a positive finite number, got 0.0'),
    ('--learning_rate=nan', '--learning_rate must be a positive finite number, got nan'),
    ('--learning_rate=inf', '--learning_rate must be a positive finite number, got inf'),
    ('--learning_rate=-0.1', '--learning_rate must be a positive finite number, got -0.1'),
    ('--binarize=sometimes', 'flag --binarize=sometimes: value should be one of <none|dynamic|static> '
                             '(see python run.py --help)'),
    ('--objective=vae', 'flag --objective=vae: value should be one of <elbo|iwae> (see python run.py --help)'),
    ('--seed=-1', '--seed must be >= 0, got -1'),
    ('--beta=-0.5', '--beta must be a finite number >= 0, got -0.5'),
    ('--beta=inf', '--beta must be a finite number >= 0, got inf'),
    ('--kl_warmup_steps=-1', '--kl_warmup_steps must be >= 0, got -1'),
    ('--objective=iwae --beta=0.5', '--objective=iwae trains the importance-weighted bound, which has no rate term '
                                    'to weigh: it needs --beta=1 and --kl_warmup_steps=0 (use --objective=elbo for '
                                    'a beta-VAE or a warm-up)'),
    ('--objective=iwae --kl_warmup_steps=10', '--objective=iwae trains the importance-weighted bound, which has no '
                                              'rate term to weigh: it needs --beta=1 and --kl_warmup_steps=0 (use '
                                              '--objective=elbo for a beta-VAE or a warm-up)'),
    ('--likelihood=continuous_bernoulli --binarize=dynamic', '--likelihood=continuous_bernoulli is a density for '
                                                              'grey levels; binary targets (--binarize=dynamic) have '
                                                              'the Bernoulli likelihood: pass --likelihood=bernoulli '
                                                              'or --binarize=none'),
    ('--likelihood=gaussian', 'flag --likelihood=gaussian: value should be one of <bernoulli|continuous_bernoulli> '
                              '(see python run.py --help)'),
    ('--eval_only --fresh', '--eval_only evaluates the run in --output_dir and --fresh deletes it; pass one of them'),
    ('--no_such_flag=1', "Unknown command line flag 'no_such_flag' (see python run.py --help)"),
    ('surplus', 'unexpected arguments: surplus (flags look like --name=value)'),
    ('--encoder_architecture=mlp', '--encoder_architecture=mlp is not a registered encoder: one of fc, conv; a '
                                   'network of your own is registered by the module --network_module names'),
    ('--decoder_architecture=CONV', '--decoder_architecture=CONV is not a registered decoder: one of fc, conv; a '
                                    'network of your own is registered by the module --network_module names'),
]


def test_every_bad_flag_gives_one_clear_line_before_any_work(tmp_path):
  command_lines = [line.split() + [f'--output_dir={tmp_path / f"out{i}"}'] for i, (line, _) in enumerate(REFUSALS)]
  results = many_mains('run', command_lines)
  for (line, message), (status, stderr) in zip(REFUSALS, results):
    assert (status, stderr) == (1, f'error: {message}\n'), line
  assert os.listdir(tmp_path) == []  # rejected before any work: no output directory was made


def test_a_bad_flag_from_the_shell_is_one_line_and_exit_status_1(started):
  result = started['latent_dim=0', None][0].finished()
  assert (result.returncode, result.stderr, result.stdout) == (
      1, 'error: --latent_dim must be a positive integer, got 0\n', '')
  result = started['latent_dim=two', None][0].finished()
  assert result.returncode == 1 and result.stderr.splitlines() == [
      "error: flag --latent_dim=two: invalid literal for int() with base 10: 'two' (see python run.py --help)"]


def test_the_flags_and_their_help_come_from_the_settings(started):
  result = started['helpfull', None][0].finished()
  from vae.run.config import SETTINGS
  for setting in SETTINGS:
    assert f'--{setting.name}' in result.stdout or f'--[no]{setting.name}' in result.stdout, setting.name
  assert 'Importance samples per training image' in result.stdout


@SETTINGS
def test_the_same_seed_repeats_every_convolutional_pair_exactly(started, setting):
  """Each pair trained twice in one process: the two runs are identical down to the last bit of every parameter.

  An on-graph training loop once ran its ops concurrently, and such runs differed. Several short epochs (one
  compiled call each) rather than one long one: a nondeterministic engine shows in the weights after a few calls,
  and each call costs only its run time, while every step in a call costs tracing time.
  """
  process, root = started['reruns', setting]
  result = process.finished()
  assert result.returncode == 0 and result.stdout.strip() == 'done', result.stderr[-3000:]
  for encoder, decoder in PAIRS[setting]:
    pair = f'{encoder}-{decoder}'
    first, second = root / f'{pair}-first', root / f'{pair}-second'
    assert len(metrics_without_time(first / 'metrics.csv')) == EPOCHS
    assert metrics_without_time(first / 'metrics.csv') == metrics_without_time(second / 'metrics.csv'), pair
    estimates = [json.load(open(d / 'evaluation.json')) for d in (first, second)]
    for key in ('test_elbo', 'test_log_likelihood'):  # full float precision, not the csv's six digits
      assert estimates[0][key] == estimates[1][key], (pair, key)
    values = [checkpointed_values(d) for d in (first, second)]
    assert int(values[0]['step/.ATTRIBUTES/VARIABLE_VALUE']) == EPOCHS * UPDATES
    assert sorted(values[0]) == sorted(values[1])
    for name in values[0]:
      assert np.array_equal(values[0][name], values[1][name]), (pair, name)
    assert not os.path.exists(first / 'figs') and not os.path.exists(first / 'spread.gif')  # --do_viz=False
