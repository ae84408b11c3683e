"""The settings of one run, with their defaults: the original script's, plus the ones it hard-coded.

`run.py` defines a flag for each field, with this default, and builds a `Config` from the flags; the package's
functions take a `Config` (or explicit arguments) and never read flags. Defaults are written here and only here.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
  # The flags of the original script, with its defaults.
  latent_dim: int = 2
  batch_size: int = 128
  encoder_architecture: str = 'fc'
  decoder_architecture: str = 'fc'
  epochs: int = 100
  updates_per_epoch: int = 100
  data_dir: str = '../mnist'
  do_viz: bool = True
  # Added: the original hard-coded these, or did not have them.
  learning_rate: float = 2e-4
  seed: int = 0
  output_dir: str = '.'
  eval_k: int = 100
  binarize: str = 'none'
  fresh: bool = False
  dataset: str = 'mnist'      # with data_dir '../mnist'; other data sets default to their own directory
  beta: float = 1.0           # the rate's weight in the training objective (1: the ELBO)
  kl_warmup_steps: int = 0    # steps over which that weight ramps up from 0
