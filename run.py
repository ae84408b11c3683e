r"""Train a variational autoencoder on MNIST (or another image data set): the one entry point.

    python run.py                                      # the original defaults: fc/fc, latent_dim=2, 100 epochs
    python run.py --encoder_architecture=conv --decoder_architecture=conv
    python run.py --do_viz=False --data_dir=/data/mnist --output_dir=runs/headless
    python run.py --flagfile=runs.flags                # absl reads the flags from a file, one per line

Each epoch is `updates_per_epoch` Adam steps on minibatches of `batch_size` training images, followed by the ELBO
on all the test images, printed with its two terms, elbo = -(rate + distortion), in nats (vae/model.py):

    epoch 100/100 [##############################] 100/100  loss 142.94  2.8 s
      test elbo -143.76  rate 6.30  distortion 137.46  active units 2/2  (3.4 s)

The command line lives in vae/commands/run.py, the training run in vae/run/; `vae-run` is the same command,
installed.
"""

import sys

from vae.commands.run import main

if __name__ == '__main__':
  sys.exit(main())
