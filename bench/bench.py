"""Benchmark: training throughput against a plain TF2 loop and the machine's own limits, and where a full default
run spends its time.

    python bench/bench.py                    # everything, on MNIST in ../mnist (downloaded if missing)
    python bench/bench.py --skip_full_run --data_dir=DIR

1. The CPU: its model and the features that pick TensorFlow's kernels (bench/machine.py).
2. For each oneDNN setting (TF_ENABLE_ONEDNN_OPTS=0 and =1, each in a fresh process, since TensorFlow reads it
   once at start-up): throughput in images per second at steady state (after a warm-up that absorbs
   compilation) of
   * ours: the project's own training epoch (`vae.run.TrainingState.run_epoch`: ten compiled steps per call, the
     on-graph batch gather, the progress bar's loss read-backs), exactly as `run.py` uses it, and
   * the reference: `bench/reference.py`, the plain GradientTape-in-tf.function loop,
   for fc/fc and conv/conv, measured in alternating rounds so that both see the same machine state; the median
   of the rounds and the ratio ours / reference. Beside them the machine's limits, measured in the same
   process: the fc step's matrix products alone at their real shapes (fc is reported as a fraction of what
   they allow), and a large matmul's GFLOP/s, which with the conv model's training FLOPs per image gives the
   conv model's FLOP-based ceiling. The "best reference" column is the reference at its fastest over both
   settings, the yardstick the project has to beat.
   And the cost of `--binarize=dynamic` (fresh Bernoulli pixels in every step) against `--binarize=none`: the
   project's own fc/fc epoch at latent_dim 2 and 50, both modes measured in alternating rounds, and the ratio.
3. A full default run (`run.py`, 100 epochs x 100 updates, viz on) in a subprocess, in the environment the
   benchmark was started with: its wall time split into phases (from the run's own timings.json), start-up
   (process start to first training step) against the reference's start-up, and the run's peak resident memory.

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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Run as a script, sys.path[0] is bench/ itself, where `bench` would name this file; the repository root
# takes its place so that `vae` and `bench.reference` resolve.
sys.path[0] = REPO

from absl import app, flags  # noqa: E402

flags.DEFINE_string('data_dir', '../mnist', 'Where the four MNIST IDX files are (run.py\'s default); '
                    'downloaded into it if missing.')
flags.DEFINE_integer('rounds', 3, 'Alternating measurement rounds per architecture.')
flags.DEFINE_integer('fc_steps', 200, 'Steps per fc measurement.')
flags.DEFINE_integer('conv_steps', 40, 'Steps per conv measurement.')
flags.DEFINE_boolean('skip_full_run', False, 'Only measure throughput.')
flags.DEFINE_list('onednn', ['0', '1'], 'The TF_ENABLE_ONEDNN_OPTS settings to measure throughput under.')
flags.DEFINE_list('archs', ['fc', 'conv'], 'The architectures (fc/fc, conv/conv) to measure against the reference.')
flags.DEFINE_list('binarisation_latent_dims', ['2', '50'], 'latent_dim values of the dynamic-binarisation rows.')
flags.DEFINE_boolean('throughput_child', False, 'Internal: measure throughput in this process, print JSON.')
flags.DEFINE_string('run_dir', None, 'Where the full default run writes its outputs (metrics, gifs, ...); they '
                    'are kept. Default: a temporary directory, deleted afterwards.')
FLAGS = flags.FLAGS


def throughput(data_dir, rounds, steps_for):
  import io
  import keras
  from bench import machine
  from bench.reference import make_reference
  from vae import data
  from vae.run.config import Config
  from vae.run.state import TrainingState, build_model

  mnist = data.load('mnist', data_dir)
  results = {}
  for arch in steps_for:
    steps = steps_for[arch]
    config = Config(encoder_architecture=arch, decoder_architecture=arch, updates_per_epoch=steps)
    with tempfile.TemporaryDirectory() as scratch:
      ours = TrainingState(config, mnist.train_images, os.path.join(scratch, 'checkpoints'))
      keras.utils.set_random_seed(0)
      reference_model = build_model(config)
      reference_step, reference_batches = make_reference(reference_model, mnist.train_images, config.batch_size)

      def run_ours():
        ours.take_epoch_steps(stream=io.StringIO())

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
                     'rounds': {name: [round(v) for v in values] for name, values in timings.items()},
                     'training_mflop_per_image': machine.training_flops_per_image(ours.model) / 1e6}
  return results


def binarisation_throughput(mnist, rounds, steps, latent_dims=(2, 50)):
  """{latent_dim: {'none', 'dynamic' (images/s, medians), 'ratio' (dynamic / none)}} for the fc/fc epoch."""
  import io
  from vae.run.config import Config
  from vae.run.state import TrainingState

  results = {}
  for latent_dim in latent_dims:
    with tempfile.TemporaryDirectory() as scratch:
      trainers = {mode: TrainingState(Config(latent_dim=latent_dim, binarize=mode, updates_per_epoch=steps),
                                     mnist.train_images, os.path.join(scratch, mode))
                  for mode in ('none', 'dynamic')}
      for trainer in trainers.values():  # compile, fill caches
        trainer.take_epoch_steps(stream=io.StringIO())
      timings = {mode: [] for mode in trainers}
      for _ in range(rounds):
        for mode, trainer in trainers.items():
          started = time.perf_counter()
          trainer.take_epoch_steps(stream=io.StringIO())
          timings[mode].append(steps * trainer.config.batch_size / (time.perf_counter() - started))
    medians = {mode: statistics.median(values) for mode, values in timings.items()}
    results[str(latent_dim)] = dict(medians, ratio=medians['dynamic'] / medians['none'])
  return results


def measure_in_this_process(data_dir, rounds, steps_for, latent_dims):
  """Throughput and the machine's limits under this process's oneDNN setting."""
  from bench import machine
  from vae.commands.quiet import import_tensorflow
  tf = import_tensorflow()
  result = {'tensorflow': tf.__version__, 'cpu': machine.cpu_summary()}
  result['throughput'] = throughput(data_dir, rounds, steps_for)
  from vae import data
  result['binarisation'] = binarisation_throughput(data.load('mnist', data_dir), rounds, FLAGS.fc_steps,
                                                   [int(d) for d in latent_dims])
  result['fc_gemm_images_per_s'], result['fc_gemm_gflops'] = machine.fc_gemm_ceiling()
  result['matmul_gflops'] = machine.matmul_rate()
  attainable = max(result['matmul_gflops'], result['fc_gemm_gflops'])
  for arch, figures in result['throughput'].items():
    figures['ceiling_images_per_s'] = (result['fc_gemm_images_per_s'] if arch == 'fc' else
                                       attainable * 1e9 / (figures['training_mflop_per_image'] * 1e6))
    figures['fraction_of_ceiling'] = figures['ours_images_per_s'] / figures['ceiling_images_per_s']
  return result


def measure_under(setting, data_dir, rounds, steps_for, latent_dims):
  """`measure_in_this_process` in a fresh process with TF_ENABLE_ONEDNN_OPTS=setting."""
  command = [sys.executable, os.path.abspath(__file__), f'--data_dir={data_dir}', f'--rounds={rounds}',
             f'--fc_steps={FLAGS.fc_steps}', f'--conv_steps={FLAGS.conv_steps}', f'--archs={",".join(steps_for)}',
             '--throughput_child', f'--binarisation_latent_dims={",".join(latent_dims)}']
  out = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting))
  if out.returncode != 0:
    raise RuntimeError(f'the measurement with TF_ENABLE_ONEDNN_OPTS={setting} failed: {out.stderr.strip()[-800:]}')
  return json.loads(out.stdout.strip().splitlines()[-1])


def reference_startup(data_dir):
  """Seconds from process start to the reference loop's first step, in a fresh process."""
  code = ('import os, sys; os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2"); '
          f'sys.path.insert(0, {REPO!r}); from bench.reference import first_step_time; '
          f'print(first_step_time({data_dir!r}))')
  launched = time.time()
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  return float(out.stdout.strip().splitlines()[-1]) - launched


def run_measuring_peak_memory(command, log_path):
  """Runs `command` (output into `log_path`); returns (exit code, its peak resident memory in MB).

  The peak is the child's own VmHWM, read from /proc while it runs. getrusage(RUSAGE_CHILDREN) would not do:
  Linux carries the parent's high-water mark into a child across fork and exec, so it would report this
  benchmark process's memory (its throughput rounds make it large) instead of the run's.
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
      time.sleep(0.05)  # often enough to see a short-lived child even on a loaded machine
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
  steps_for = {arch: {'fc': FLAGS.fc_steps, 'conv': FLAGS.conv_steps}[arch] for arch in FLAGS.archs}
  if FLAGS.throughput_child:
    print(json.dumps(measure_in_this_process(FLAGS.data_dir, FLAGS.rounds, steps_for,
                                             FLAGS.binarisation_latent_dims)))
    return
  report = {'machine': f'{os.cpu_count()} cores', 'python': sys.version.split()[0],
            'user_onednn_setting': os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset)'),
            'by_onednn_setting': {setting: measure_under(setting, FLAGS.data_dir, FLAGS.rounds, steps_for,
                                                         FLAGS.binarisation_latent_dims)
                                  for setting in FLAGS.onednn}}
  first = next(iter(report['by_onednn_setting'].values()))
  report['tensorflow'], report['cpu'] = first['tensorflow'], first['cpu']
  best_reference = {arch: max(r['throughput'][arch]['reference_images_per_s']
                              for r in report['by_onednn_setting'].values()) for arch in steps_for}
  print(f'CPU: {first["cpu"]["model"]}, {os.cpu_count()} cores; features: {" ".join(first["cpu"]["features"])}; '
        f'TensorFlow {first["tensorflow"]}; TF_ENABLE_ONEDNN_OPTS here: {report["user_onednn_setting"]}')
  print(f'\nTraining throughput (images/s, median of {FLAGS.rounds} alternating rounds, batch 128)')
  print(f'{"oneDNN":<8}{"model":<11}{"ours":>8}{"reference":>11}{"ratio":>7}{"vs best ref":>13}'
        f'{"ceiling":>9}{"of ceiling":>12}')
  for setting, r in report['by_onednn_setting'].items():
    on = 'on' if r['cpu']['onednn'] else 'off'
    for arch, t in r['throughput'].items():
      t['ratio_to_best_reference'] = t['ours_images_per_s'] / best_reference[arch]
      print(f'{on + " (" + setting + ")":<8}{arch + "/" + arch:<11}{t["ours_images_per_s"]:>8.0f}'
            f'{t["reference_images_per_s"]:>11.0f}{t["ratio"]:>7.2f}{t["ratio_to_best_reference"]:>13.2f}'
            f'{t["ceiling_images_per_s"]:>9.0f}{t["fraction_of_ceiling"]:>11.0%}')
    print(f'{"":<8}limits: fc GEMMs alone {r["fc_gemm_gflops"]:.0f} GFLOP/s -> {r["fc_gemm_images_per_s"]:,.0f} '
          f'images/s; 1024^3 matmul {r["matmul_gflops"]:.0f} GFLOP/s' + ''.join(
              f'; {arch}/{arch} {t["training_mflop_per_image"]:.1f} MFLOP per training image'
              for arch, t in r['throughput'].items()))
  print(f'\nDynamic binarisation against none (fc/fc, ours, images/s, median of {FLAGS.rounds} alternating rounds)')
  print(f'{"oneDNN":<8}{"latent_dim":>11}{"none":>9}{"dynamic":>9}{"ratio":>7}')
  for setting, r in report['by_onednn_setting'].items():
    on = 'on' if r['cpu']['onednn'] else 'off'
    for latent_dim, b in r['binarisation'].items():
      print(f'{on + " (" + setting + ")":<8}{latent_dim:>11}{b["none"]:>9.0f}{b["dynamic"]:>9.0f}{b["ratio"]:>7.2f}')
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
