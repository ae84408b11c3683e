"""The end of a training run: the gifs, the loss curve, the exported networks, and the record of the run.

The record (evaluation.json, vae/run/record.py) is written last, after everything else: a directory that holds it
holds a finished run, which the same command then leaves as it is (vae/run/resume.py).
"""

import tensorflow as tf

from vae import viz
from vae.run import gifs, rundir
from vae.run.record import final_evaluation


def finish(run):
  """Ends the `EpochLoop` `run` (vae/run/epochs.py) once its last epoch is complete: gifs, loss curve, export, the
  final estimate in evaluation.json, timings.json. Returns the last epoch's metrics row."""
  config, paths, timer, model = run.config, run.paths, run.timer, run.state.model
  if run.frames:
    with timer('gif writing'):
      written = run.frames.write_gifs(config.epochs)
    run.log('wrote ' + ', '.join(written))
  with timer('loss curve and export'):
    if run.rows:  # drawn from metrics.csv as written, so that a resumed run draws what an uninterrupted one does
      written = rundir.read_metrics(paths.metrics, up_to_epoch=config.epochs)
      gifs.save_png(paths.loss_curve, viz.plot_metrics(written))
    rundir.export_model(model, paths.export)
  run.log(f'exported the encoder and decoder to {paths.export}/')
  with timer('final log-likelihood estimate'):
    final = final_evaluation(model, run.test_images, config, run.evaluate_fn, run.eval_eps, run.log, elbo=run.test)
  with run.summaries.as_default(step=int(run.state.step.numpy())):
    tf.summary.scalar(f'test_log_likelihood_k{config.eval_k}', final['test_log_likelihood'])
  run.summaries.close()
  rundir.write_json(paths.evaluation, final)
  rundir.write_json(paths.timings, {'seconds': timer.seconds, 'first_step_unix_time': run.state.first_step_time})
  return run.rows[-1] if run.rows else None
