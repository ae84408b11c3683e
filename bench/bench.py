"""Benchmark: training throughput against a plain TF2 loop, and where a full default run spends its time.

    python bench/bench.py --data_dir=../shared/data/mnist              # everything (about 10 minutes on 2 cores)
    python bench/bench.py --data_dir=../shared/data/mnist --skip_full_run

1. Throughput, in images per second at steady state (after a warm-up that absorbs compilation), of
   * ours: the project's own training epoch (`vae.loop.Trainer.run_epoch`: ten compiled steps per call, the
     on-graph batch gather, the progress bar's loss read-backs), exactly as `run.py` uses it, and
   * the reference: `bench/reference.py`, the plain GradientTape-in-tf.function loop,
   for fc/fc and conv/conv, measured in alternating rounds in one process so that both see the same machine
   state; the median of the rounds and the ratio ours / reference.
2. A full default run (`run.py`, 100 epochs x 100 updates, viz on) in a subprocess: its wall time split into
   phases (from the run's own timings.json), start-up (process start to first training step) against the
   reference's start-up, and the run's peak resident memory.

It prints a table and then one JSON line with every figure.
"""

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Run as a script, sys.path[0] is bench/ itself, where `bench` would name this file; the repository root
# takes its place so that `vae` and `bench.reference` resolve.
sys.path[0] = REPO

from absl import app, flags  # noqa: E402

flags.DEFINE_string('data_dir', '../shared/data/mnist', 'MNIST IDX files.')
flags.DEFINE_integer('rounds', 3, 'Alternating measurement rounds per architecture.')
flags.DEFINE_integer('fc_steps', 200, 'Steps per fc measurement.')
flags.DEFINE_integer('conv_steps', 40, 'Steps per conv measurement.')
flags.DEFINE_boolean('skip_full_run', False, 'Only measure throughput.')
flags.DEFINE_string('run_dir', None, 'Where the full default run writes its outputs (metrics, gifs, ...); they '
                    'are kept. Default: a temporary directory, deleted afterwards.')
FLAGS = flags.FLAGS


def throughput(data_dir, rounds, steps_for):
  import io
  import keras
  import tensorflow as tf
  from bench.reference import make_reference
  from vae import idx, inputs, loop

  mnist = idx.load_mnist(data_dir)
  results = {}
  for arch in ('fc', 'conv'):
    steps = steps_for[arch]
    config = loop.Config(encoder_architecture=arch, decoder_architecture=arch, updates_per_epoch=steps)
    with tempfile.TemporaryDirectory() as scratch:
      ours = loop.Trainer(config, mnist.train_images, os.path.join(scratch, 'checkpoints'))
      keras.utils.set_random_seed(0)
      reference_model = loop.build_model(config)
      reference_step, reference_batches = make_reference(reference_model, mnist.train_images, config.batch_size)

      def run_ours():
        ours.run_epoch('bench', stream=io.StringIO())

      def run_reference():
        loss = None
        for _ in range(steps):
          loss = reference_step(next(reference_batches))
        float(loss)

      for warm_up in (run_ours, run_reference):  # compile, fill caches
        warm_up()
      timings = {'ours': [], 'reference': []}
      for _ in range(rounds):
        for name, fn in (('ours', run_ours), ('reference', run_reference)):
          started = time.perf_counter()
          fn()
          timings[name].append(steps * config.batch_size / (time.perf_counter() - started))
    medians = {name: statistics.median(values) for name, values in timings.items()}
    results[arch] = {'ours_images_per_s': medians['ours'], 'reference_images_per_s': medians['reference'],
                     'ratio': medians['ours'] / medians['reference'],
                     'rounds': {name: [round(v) for v in values] for name, values in timings.items()}}
    del ours, reference_model
  return results


def reference_startup(data_dir):
  """Seconds from process start to the reference loop's first step, in a fresh process."""
  code = ('import time, os; os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2"); import sys; '
          f'sys.path.insert(0, {REPO!r}); '
          'from vae import idx, inputs, loop; from bench.reference import make_reference; '
          f'm = idx.load_mnist({data_dir!r}); model = loop.build_model(loop.Config()); '
          'step, batches = make_reference(model, m.train_images, 128); x = next(batches); '
          'print(time.time()); step(x)')
  launched = time.time()
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  return float(out.stdout.strip().splitlines()[-1]) - launched


def run_measuring_peak_memory(command, log_path):
  """Runs `command` (output into `log_path`); returns (exit code, its peak resident memory in MB).

  The peak is the child's own VmHWM, read from /proc while it runs. getrusage(RUSAGE_CHILDREN) would not do:
  Linux carries the parent's high-water mark into a child across fork and exec, so it would report this
  benchmark process's memory (about 1.7 GB after the throughput rounds) instead of the run's.
  """
  peak_kb = 0
  with open(log_path, 'w') as log:
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    while child.poll() is None:
      try:
        with open(f'/proc/{child.pid}/status') as status:
          for line in status:
            if line.startswith('VmHWM:'):
              peak_kb = max(peak_kb, int(line.split()[1]))
      except OSError:  # exited between poll() and open()
        pass
      time.sleep(0.2)
  return child.returncode, peak_kb / 1024.0


def full_run(data_dir, run_dir=None):
  with contextlib.ExitStack() as stack:
    scratch = stack.enter_context(tempfile.TemporaryDirectory())
    out = run_dir or os.path.join(scratch, 'run')
    log_path = os.path.join(scratch, 'run.log')
    launched = time.time()
    # --fresh: a --run_dir left by an earlier benchmark is started over, not resumed.
    returncode, peak_mb = run_measuring_peak_memory(
        [sys.executable, os.path.join(REPO, 'run.py'), f'--data_dir={data_dir}', f'--output_dir={out}', '--fresh'],
        log_path)
    wall = time.time() - launched
    if returncode != 0:
      raise RuntimeError(f'the default run failed: {open(log_path).read().strip()[-500:]}')
    timings = json.load(open(os.path.join(out, 'timings.json')))
    evaluation = json.load(open(os.path.join(out, 'evaluation.json')))
  phases = dict(timings['seconds'])
  phases['start-up (process start to first step)'] = timings['first_step_unix_time'] - launched
  phases['other'] = wall - sum(phases.values())
  return {'wall_s': wall, 'phases_s': phases, 'peak_rss_mb': peak_mb, 'test_elbo': evaluation['test_elbo']}


def main(argv):
  del argv
  report = {'machine': f'{os.cpu_count()} cores', 'python': sys.version.split()[0]}
  import tensorflow as tf
  report['tensorflow'] = tf.__version__
  report['throughput'] = throughput(FLAGS.data_dir, FLAGS.rounds,
                                    {'fc': FLAGS.fc_steps, 'conv': FLAGS.conv_steps})
  print(f'\nTraining throughput (images/s, median of {FLAGS.rounds} alternating rounds, batch 128)')
  print(f'{"model":<12}{"ours":>10}{"reference":>12}{"ratio":>8}')
  for arch, r in report['throughput'].items():
    print(f'{arch + "/" + arch:<12}{r["ours_images_per_s"]:>10.0f}{r["reference_images_per_s"]:>12.0f}'
          f'{r["ratio"]:>8.2f}')
  if not FLAGS.skip_full_run:
    report['reference_startup_s'] = reference_startup(FLAGS.data_dir)
    report['full_run'] = run = full_run(FLAGS.data_dir, FLAGS.run_dir)
    train_s = run['phases_s']['training steps']
    print(f'\nFull default run (fc/fc, 100 epochs x 100 updates, viz on): {run["wall_s"]:.1f} s wall, '
          f'{run["wall_s"] / train_s:.2f}x its training steps, peak RSS {run["peak_rss_mb"]:.0f} MB')
    for phase, seconds in sorted(run['phases_s'].items(), key=lambda item: -item[1]):
      print(f'  {phase:<42}{seconds:>8.1f} s')
    startup = run['phases_s']['start-up (process start to first step)']
    print(f'  start-up vs reference: {startup:.1f} s vs {report["reference_startup_s"]:.1f} s '
          f'({startup / report["reference_startup_s"]:.2f}x)')
  print(json.dumps(report))


if __name__ == '__main__':
  app.run(main)
