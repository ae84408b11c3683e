import os

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from vae.run import frames, gifs
from vae import viz


def test_latent_grid_reads_like_a_plot():
  grid = viz.latent_grid(15, 2.0)
  assert grid.shape == (225, 2) and grid.dtype == np.float32
  np.testing.assert_allclose(grid[0], [-2, 2])      # top left
  np.testing.assert_allclose(grid[14], [2, 2])      # top right
  np.testing.assert_allclose(grid[-1], [2, -2])     # bottom right
  np.testing.assert_allclose(grid[112], [0, 0])     # centre


def test_tile_places_images_row_major():
  images = np.arange(6)[:, None, None] * np.ones((6, 2, 3))
  tiled = viz.tile(images, rows=2, cols=3)
  assert tiled.shape == (4, 9)
  assert tiled[0, 0] == 0 and tiled[0, 3] == 1 and tiled[0, 8] == 2 and tiled[2, 0] == 3 and tiled[3, 8] == 5
  with pytest.raises(ValueError, match='cannot tile 6 images into 2x2'):
    viz.tile(images, 2, 2)


def test_canvas_frame_maps_logits_to_grey_levels():
  logits = np.zeros((225, 784))
  logits[0] = 50.0
  logits[224] = -50.0
  frame = viz.canvas_frame(logits)
  assert frame.shape == (420, 420) and frame.dtype == np.uint8
  assert frame[0, 0] == 255 and frame[-1, -1] == 0 and frame[200, 200] == 128


def test_log_time_durations_slow_down_the_first_epochs():
  ms = gifs.log_time_durations(100, total_seconds=10.0)
  # Log time over 100 epochs: the first frame gets log(2)/log(101) of the 10 s, the second log(3/2)/log(101), ...
  assert ms[:4] == [1500, 880, 620, 480] and ms[-1] == 20
  assert all(a >= b for a, b in zip(ms, ms[1:]))   # never faster early than late
  assert all(d % 10 == 0 for d in ms)              # gif delays are whole hundredths of a second
  assert 9000 <= sum(ms) <= 11500                  # about the 10 s asked for (the 20 ms floor adds a little)


def test_class_centroids():
  points = np.array([[0.0, 0.0], [2.0, 2.0], [5.0, 1.0]])
  centres = viz.class_centroids(points, np.array([3, 3, 7]))
  np.testing.assert_allclose(centres[3], [1.0, 1.0])
  np.testing.assert_allclose(centres[7], [5.0, 1.0])


def test_spread_plot_renders_frames_that_depend_on_the_points():
  labels = np.arange(200) % 10
  plot = viz.SpreadPlot(labels, size_inches=3, dpi=50)
  rng = np.random.default_rng(0)
  points = rng.normal(size=(200, 2))
  first = plot.render(points, epoch=1)
  again = plot.render(points, epoch=1)
  moved = plot.render(points + 2, epoch=1)  # the same epoch in the title: only the points differ
  plot.close()
  assert first.shape == (150, 150, 3) and first.dtype == np.uint8
  assert np.array_equal(first, again)
  assert not np.array_equal(first, moved)


def test_a_reused_spread_plot_draws_what_a_fresh_one_would():
  labels = np.arange(300) % 10
  rng = np.random.default_rng(1)
  points = [rng.normal(size=(300, 2)) * scale for scale in (0.5, 2.0, 1.0)]
  reused = viz.SpreadPlot(labels, size_inches=3, dpi=60)
  frames = [reused.render(p, epoch=e) for e, p in enumerate(points, start=1)]
  reused.close()
  fresh = viz.SpreadPlot(labels, size_inches=3, dpi=60)
  last = fresh.render(points[2], epoch=3)
  fresh.close()
  np.testing.assert_array_equal(frames[2], last)  # nothing of the earlier frames is left behind


def test_spread_plot_labels_each_digit_at_its_centroid():
  labels = np.repeat(np.arange(3), 20)
  plot = viz.SpreadPlot(labels, size_inches=3, dpi=60)
  plot.render(np.zeros((60, 2)), epoch=1)
  centres = np.array([[-3.0, 2.0], [0.5, -1.0], [4.0, 4.0]])
  plot.render(centres[labels] + np.random.default_rng(0).normal(scale=0.1, size=(60, 2)), epoch=2)
  for digit, centre in enumerate(centres):
    where = plot.axes.transData.transform(centre)                    # the centroid, in pixels
    box = plot.class_labels[digit].get_window_extent()                # the drawn label, in pixels
    assert box.x0 - 2 < where[0] < box.x1 + 2 and box.y0 - 2 < where[1] < box.y1 + 2, (digit, where, box)
  plot.close()


def test_epoch_frames_write_numbered_pngs_and_two_gifs(tmp_path):
  labels = np.arange(50) % 10
  epoch_frames = frames.EpochFrames(str(tmp_path), labels, latent_dim=2)
  rng = np.random.default_rng(0)
  for epoch in (1, 2, 3):
    epoch_frames.write(epoch, rng.normal(size=(50, 2)), {'canvas': viz.canvas_frame(rng.normal(size=(225, 784)))})
  epoch_frames.write_gifs(3)
  epoch_frames.close()
  assert sorted(os.listdir(tmp_path / 'figs' / 'canvas')) == ['epoch_0001.png', 'epoch_0002.png', 'epoch_0003.png']
  assert iio.imread(tmp_path / 'figs' / 'canvas' / 'epoch_0002.png').shape == (420, 420)
  assert iio.imread(tmp_path / 'figs' / 'spread' / 'epoch_0003.png').shape == (600, 600, 3)
  with Image.open(tmp_path / 'canvas.gif') as gif:
    assert gif.n_frames == 3
    durations = []
    for i in range(3):
      gif.seek(i)
      durations.append(gif.info['duration'])
  assert durations == gifs.log_time_durations(3)
  with Image.open(tmp_path / 'spread.gif') as gif:
    assert gif.n_frames == 3 and gif.size == (600, 600)
  assert [n for n in os.listdir(tmp_path) if n.endswith('.tmp')] == []


def test_pca_2d_finds_the_dominant_directions_with_stable_signs():
  rng = np.random.default_rng(0)
  latent = rng.normal(size=(500, 5)) * np.array([5.0, 0.1, 3.0, 0.1, 0.1])
  projected = viz.pca_2d(latent)
  assert projected.shape == (500, 2)
  # Each axis points the way its largest loading does, whatever sign the SVD returned: for these points, along
  # +z0 and +z2. Over eight draws (and their mirror images, whose pictures must mirror too) a projection whose
  # signs were left to the SVD would pass by chance with probability 2**-32.
  for seed in range(8):
    latent = np.random.default_rng(seed).normal(size=(500, 5)) * np.array([5.0, 0.1, 3.0, 0.1, 0.1])
    for mirror in (1.0, -1.0):
      points = latent * np.array([mirror, 1, mirror, 1, 1])
      projected = viz.pca_2d(points)
      assert np.corrcoef(projected[:, 0], points[:, 0])[0, 1] > 0.999
      assert np.corrcoef(projected[:, 1], points[:, 2])[0, 1] > 0.99
  assert viz.pca_2d(rng.normal(size=(20, 1))).shape == (20, 2)


def test_reconstruction_frame_alternates_originals_and_reconstructions():
  originals = np.zeros((20, 784))
  logits = np.full((20, 784), 50.0)
  frame = viz.reconstruction_frame(originals, logits, cols=10)
  assert frame.shape == (4 * 28, 10 * 28)
  assert frame[:28].max() == 0 and frame[28:56].min() == 255 and frame[56:84].max() == 0


def test_epoch_frames_for_a_larger_latent_space(tmp_path):
  epoch_frames = frames.EpochFrames(str(tmp_path), np.arange(40) % 10, latent_dim=4)
  rng = np.random.default_rng(0)
  grids = {'samples': viz.probability_tile(rng.normal(size=(100, 784)), 10, 10),
           'reconstructions': viz.reconstruction_frame(rng.random((50, 784)), rng.normal(size=(50, 784)))}
  epoch_frames.write(1, rng.normal(size=(40, 4)), grids)
  paths = epoch_frames.write_gifs(1)
  epoch_frames.close()
  assert sorted(os.path.basename(p) for p in paths) == ['reconstructions.gif', 'samples.gif', 'spread.gif']
  assert sorted(os.listdir(tmp_path / 'figs')) == ['reconstructions', 'samples', 'spread']
  assert iio.imread(tmp_path / 'figs' / 'reconstructions' / 'epoch_0001.png').shape == (280, 280)


def test_write_gif_from_a_generator_keeps_pixels_and_durations(tmp_path):
  rng = np.random.default_rng(0)
  frames = [np.repeat(rng.integers(0, 4, size=(20, 30, 1)) * 60, 3, axis=2).astype(np.uint8) for _ in range(5)]
  handed_out = []

  def lazily():
    for frame in frames:
      handed_out.append(len(handed_out))
      yield frame

  stream = lazily()
  path = str(tmp_path / 'x.gif')
  gifs.write_gif(path, stream, [30, 40, 50, 60, 70])
  assert handed_out == [0, 1, 2, 3, 4]
  with Image.open(path) as gif:
    assert gif.n_frames == 5
    for i, frame in enumerate(frames):
      gif.seek(i)
      assert gif.info['duration'] == 30 + 10 * i
      np.testing.assert_array_equal(np.asarray(gif.convert('RGB')), frame)  # 4 grey levels: no palette loss


def test_grey_frames_are_stored_within_a_few_levels_and_colour_frames_exactly(tmp_path):
  rng = np.random.default_rng(1)
  base = rng.integers(0, 256, size=(30, 40))
  grey = [np.clip(base + drift, 0, 255).astype(np.uint8) for drift in (0, 3, 6, 30, 31)]   # slow, then a jump
  held = list(gifs.held_grey_frames(grey))
  bound = gifs.GREY_STEP // 2 + gifs.HOLD_LEVELS
  for shown, frame in zip(held, grey):
    assert np.abs(shown.astype(int) - frame).max() <= bound
  np.testing.assert_array_equal(held[1], held[0])     # a drift of 3 levels is not redrawn
  assert np.mean(held[3] != held[2]) > 0.9            # a jump of 24 levels is
  colour = [rng.integers(0, 4, size=(6, 8, 3)).astype(np.uint8) * 60 for _ in range(2)]
  assert all(np.array_equal(a, b) for a, b in zip(gifs.held_grey_frames(colour), colour))
  path = str(tmp_path / 'grey.gif')
  gifs.write_gif(path, grey, [100] * 5)
  with Image.open(path) as gif:
    shown = []
    for i in range(gif.n_frames):
      gif.seek(i)
      shown.append((np.asarray(gif.convert('RGB'))[..., 0], gif.info['duration']))
  assert sum(duration for _, duration in shown) == 500      # identical frames merge, the timing stays
  assert all(np.abs(frame.astype(int) - grey[-1]).max() <= bound for frame, _ in shown[-1:])
  gifs.write_gif(path, grey, [100] * 5, compact_grey=False)
  with Image.open(path) as gif:
    gif.seek(4)
    np.testing.assert_array_equal(np.asarray(gif.convert('RGB'))[..., 0], grey[4])


def test_write_gif_rejects_a_frame_count_that_does_not_match_the_durations(tmp_path):
  frames = [np.zeros((8, 8), np.uint8)] * 3
  with pytest.raises(ValueError, match='3 frames but 4 durations'):
    gifs.write_gif(str(tmp_path / 'a.gif'), iter(frames), [10] * 4)
  with pytest.raises(ValueError, match='more frames than the 2 durations'):
    gifs.write_gif(str(tmp_path / 'b.gif'), iter(frames), [10] * 2)
  assert os.listdir(tmp_path) == []


def test_the_reconstructions_frame_decodes_each_digits_own_posterior():
  originals = np.zeros((10, 784), np.float32)
  originals[:, :392] = 1.0  # top half of every digit inked
  fixed = viz.fixed_frame_inputs(latent_dim=3, seed=0, test_images=originals)
  seen = {}

  def reconstruct(x, eps):
    seen['x'], seen['eps'] = np.asarray(x), np.asarray(eps)
    return np.where(np.asarray(x) > 0.5, 20.0, -20.0).astype(np.float32)  # a perfect reconstruction

  decode = lambda z: np.zeros((len(z), 784), np.float32)  # noqa: E731
  frames = viz.decode_frames(lambda z: _Array(decode(z)), lambda x, e: _Array(reconstruct(x, e)), fixed)
  np.testing.assert_array_equal(seen['x'], originals)
  assert seen['eps'].shape == (10, 3)
  original_row, reconstructed_row = frames['reconstructions'][:28], frames['reconstructions'][28:56]
  np.testing.assert_array_equal(original_row, reconstructed_row)
  assert frames['samples'].shape == (280, 280)


class _Array:
  """Stands in for an eager tensor: the frames call .numpy() on what decode returns."""

  def __init__(self, value):
    self.value = value

  def numpy(self):
    return self.value
