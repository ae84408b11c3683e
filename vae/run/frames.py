"""A run's frames on disk: each epoch's pictures under `<output_dir>/figs/<kind>/`, and one gif per kind at the end.

The pictures themselves are vae/viz.py's; this module only decides which kinds a run draws, where each frame goes,
and how the gifs are timed.
"""

import os

from vae import preprocess, viz
from vae.run.fileio import ensure_writable_dir
from vae.run.gifs import frame_path, gif_from_frames, log_time_durations, save_png


class EpochFrames:
  """Writes each epoch's frames under `<output_dir>/figs/<kind>/`, and one gif per kind at the end.

  The kinds are 'spread' plus 'canvas' (latent_dim == 2) or 'samples' and 'reconstructions' (any other latent_dim).
  """

  def __init__(self, output_dir, spread_labels, latent_dim, class_names=preprocess.DIGITS):
    self.output_dir = output_dir
    self.latent_dim = latent_dim
    self.kinds = ('spread', 'canvas') if latent_dim == 2 else ('spread', 'samples', 'reconstructions')
    self.dirs = {kind: os.path.join(output_dir, 'figs', kind) for kind in self.kinds}
    for directory in self.dirs.values():
      ensure_writable_dir(directory, 'frame directory')
    self.spread_plot = viz.SpreadPlot(spread_labels, class_names)

  def write(self, epoch, spread_means, grids):
    """spread_means [N, latent_dim]; grids: {kind: uint8 image} for the other kinds."""
    if self.latent_dim == 2:
      spread = self.spread_plot.render(spread_means, epoch)
    else:
      spread = self.spread_plot.render(viz.pca_2d(spread_means), epoch, projected=True)
    save_png(frame_path(self.dirs['spread'], epoch), spread)
    for kind in self.kinds[1:]:
      save_png(frame_path(self.dirs[kind], epoch), grids[kind])

  def write_gifs(self, epochs):
    """One gif per kind from the frames of epochs 1..`epochs`: the spread evenly timed, the rest in log time.

    Returns the paths written.
    """
    paths = []
    for kind in self.kinds:
      if kind == 'spread':
        durations = [max(20, int(round(10000.0 / epochs / 10.0)) * 10)] * epochs
      else:
        durations = log_time_durations(epochs)
      path = os.path.join(self.output_dir, f'{kind}.gif')
      gif_from_frames(path, self.dirs[kind], epochs, durations)
      paths.append(path)
    return paths

  def close(self):
    self.spread_plot.close()
