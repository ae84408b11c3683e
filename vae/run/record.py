"""The evaluation protocol of a finished run and its record, evaluation.json; and `--eval_only`, which repeats it.

The record holds the test ELBO with its two terms under the fixed evaluation noise (rate weight 1, whatever
--beta and --kl_warmup_steps trained with), the active units and the rate of each latent dimension, the k-sample
importance-weighted estimate of log p(x) (vae/evaluate.py), and every setting that defines the trained model.
"""

import dataclasses
import os
import time

import tensorflow as tf

from vae import data, evaluate, preprocess
from vae.commands.errors import VAEError
from vae.run import checkpoints, rundir, user_networks
from vae.run.config import RESUME_KEYS, RUN_SETTINGS, Config, parse_image_size
from vae.run.fileio import RunLock
from vae.run.state import build_model

def final_evaluation(model, test_images, config, evaluate_fn, eval_eps, log, elbo=None):
  """The test ELBO (fixed noise) and the k-sample importance-weighted log-likelihood estimate.

  `elbo`: the evaluator's result for this very model, when the last epoch has just computed it.
  """
  log(f'estimating log p(x) on {len(test_images):,} test images with k={config.eval_k} importance samples')
  started = time.perf_counter()
  if elbo is None:
    elbo = evaluate_fn(test_images, eval_eps)
  log_likelihood = evaluate.iwae_log_likelihood(model, test_images, config.eval_k, config.seed)
  # The true ELBO terms (rate weight 1), whatever --beta and --kl_warmup_steps trained with, and every setting
  # that defines the trained model (those a resume must match).
  result = {**{key: getattr(config, key) for key in RESUME_KEYS}, 'test_elbo': float(elbo['elbo'].mean()),
            'test_rate': float(elbo['rate'].mean()), 'test_distortion': float(elbo['distortion'].mean()),
            'active_units': evaluate.active_units(elbo['mean']),
            'rate_per_dimension': [float(r) for r in evaluate.mean_rate_per_dimension(elbo['rate_per_dimension'])],
            'test_log_likelihood': float(log_likelihood.mean()), 'eval_k': config.eval_k,
            'num_test_images': len(test_images), 'seconds': time.perf_counter() - started}
  log(f'test elbo {result["test_elbo"]:.2f}, log-likelihood (IWAE, k={config.eval_k}) '
      f'{result["test_log_likelihood"]:.2f} nats, active units {result["active_units"]}/{config.latent_dim}  '
      f'({result["seconds"]:.1f} s)')
  return result


def evaluate_saved_run(output_dir, eval_k, data_dir=None, log=print):
  """--eval_only: restores the run in `output_dir` and re-estimates its test ELBO and log-likelihood.

  Takes the run lock, as training does, so that it never overwrites evaluation.json under a training run, nor a
  training run under it.
  """
  paths = rundir.RunPaths(output_dir)
  if not os.path.isdir(output_dir):
    raise VAEError(f'{output_dir} holds no trained run (it does not exist); train one there first')
  with RunLock(output_dir):
    saved = rundir.read_saved_flags(paths, hint='restore it from a copy of the run')
    newest = checkpoints.newest_intact(paths.checkpoints, log)
    if saved is None or newest is None:
      raise VAEError(f'{output_dir} holds no trained run (no flags.json or no checkpoint); train one there first')
    user_networks.load_for_saved_run(saved, output_dir)
    run_config = Config(**{k: v for k, v in saved.items() if k in RUN_SETTINGS})
    config = dataclasses.replace(run_config, eval_k=eval_k, output_dir=output_dir,
                                 data_dir=data.resolve_data_dir(run_config.dataset, data_dir, saved.get('data_dir')))
    dataset = data.load(config.dataset, config.data_dir, image_size=parse_image_size(config.image_size))
    _, test_images = preprocess.prepare_images(dataset, config.binarize, config.seed)
    model = build_model(config, dataset.image_shape)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
    # Only the networks and the step are needed; the optimiser state is left alone.
    checkpoints.restore(tf.train.Checkpoint(encoder=model.encoder, decoder=model.decoder, step=step), newest[1],
                        partial=True)
    log(f'restored {newest[1]} (step {int(step.numpy())})')
    evaluate_fn = evaluate.make_evaluator(model)
    eval_eps = evaluate.eval_noise(config.seed, len(test_images), config.latent_dim)
    final = final_evaluation(model, test_images, config, evaluate_fn, eval_eps, log)
    rundir.write_json(paths.evaluation, final)
    return final
