"""The progress bar and the phase timer of the epoch loop.

On a terminal the line is redrawn in place (`\r`) as steps complete; when output goes to a file or a pipe only the
finished line is written, so logs stay readable.
"""

import contextlib
import sys
import time


class ProgressBar:
  """`epoch 3/100 [##########----------]  50/100  loss 203.12  1.0 s`, where loss is the running epoch mean."""

  def __init__(self, label, total, stream=None, width=30, done=0, loss_sum=0.0):
    """`done` steps, whose losses add up to `loss_sum`, are already complete (a run resumed mid-epoch)."""
    self.label = label
    self.total = total
    self.stream = stream or sys.stdout
    self.width = width
    self.interactive = hasattr(self.stream, 'isatty') and self.stream.isatty()
    self.started = time.perf_counter()
    self.loss_sum = loss_sum
    self.done = done

  def update(self, done, losses):
    """Records that `done` steps are complete, the latest of them with the given losses."""
    self.done = done
    self.loss_sum += float(sum(losses))
    if self.interactive:
      self.stream.write('\r' + self.line())
      self.stream.flush()

  @property
  def mean_loss(self):
    return self.loss_sum / max(self.done, 1)

  def line(self):
    filled = self.width * self.done // max(self.total, 1)
    bar = '#' * filled + '-' * (self.width - filled)
    digits = len(str(self.total))
    return (f'{self.label} [{bar}] {self.done:>{digits}}/{self.total}  loss {self.mean_loss:.2f}  '
            f'{time.perf_counter() - self.started:.1f} s')

  def finish(self):
    self.stream.write(('\r' if self.interactive else '') + self.line() + '\n')
    self.stream.flush()


class PhaseTimer:
  """Adds up the wall time spent in each named phase of a run (written to timings.json; read by bench/).

      timer = PhaseTimer()
      with timer('training steps'):
        ...
  """

  def __init__(self):
    self.seconds = {}

  @contextlib.contextmanager
  def __call__(self, phase):
    started = time.perf_counter()
    try:
      yield
    finally:
      self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started
