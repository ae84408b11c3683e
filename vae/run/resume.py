"""Whether a run directory can be continued, and from which checkpoint: checked before anything in it is written.

A resumed run must be the run that was started: the settings that define the model, the data and the random
streams (vae/run/config.py's resume keys) must match its flags.json, and its metrics.csv must hold the epochs its
newest intact checkpoint holds. A directory that holds a finished run (every step trained and evaluation.json
written) is left as it is.
"""

from vae.commands.errors import VAEError
from vae.run import checkpoints, rundir

FINISHED = 'finished'


def resume_point(config, paths, flag_values, log):
  """The newest intact checkpoint (step, prefix) to resume from, None to start afresh, or FINISHED; checked
  before any file of the directory is written, on the same view of it the restore then uses.

  Refuses (VAEError, one line) a directory that holds a run this one cannot continue: flags that a resume must
  match changed, more epochs than --epochs, metrics without the checkpoints they belong to.
  """
  if config.fresh:
    return None
  newest = checkpoints.newest_intact(paths.checkpoints, log)
  rows = rundir.read_metrics(paths.metrics)
  held = newest[0] // config.updates_per_epoch if newest else 0
  if newest is None and len(rows) > 1:
    raise VAEError(f'{paths.root} holds metrics.csv with {len(rows)} epochs but no checkpoint to resume from; '
                   f'restore its checkpoints/ from a copy, or pass --fresh to start over (this deletes its '
                   f'metrics and frames)')
  if newest is None:
    return None
  rundir.check_resumable(paths, flag_values)
  step, total = newest[0], config.epochs * config.updates_per_epoch
  if step > total:
    raise VAEError(f'{paths.root} holds a run trained for {step} steps ({held} epochs of '
                   f'{config.updates_per_epoch}), more than --epochs={config.epochs} asks for; pass '
                   f'--epochs={-(-step // config.updates_per_epoch)} or more to continue it, or --fresh to start '
                   f'over')
  if len(rows) < held:
    raise VAEError(f'{paths.metrics} holds {len(rows)} epochs but the checkpoint {newest[1]} holds {held}; restore '
                   f'metrics.csv from a copy, or pass --fresh to start over')
  if step == total and rundir.read_evaluation(paths) is not None:
    return FINISHED
  return newest
