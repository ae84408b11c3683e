"""The signals that stop a command, and stopping a run at a step.

Four signals mean "stop": SIGINT (Ctrl-C), SIGTERM (what `kill` sends, and what SLURM and most schedulers send
at a time limit or on preemption), SIGHUP (the terminal closed) and SIGUSR1 (what a batch script can ask SLURM
to send ahead of the time limit, `#SBATCH --signal=...`). While `install` is in force (vae/commands/cli.py
installs it for every command) each of them raises `Stopped` where the program is, so the command ends with one
line and exit status 128 + the signal's number, as a shell reports a process ended by it.

Training steps are different: they are where the hours go, and stopping between two of them loses nothing. Inside
`deferred()` (vae/run/epochs.py runs the epochs in it) a first signal is only recorded; vae/run/state.py asks
`pending()` after every call of compiled steps, saves a checkpoint at exactly that step, and then raises
`Stopped` itself. A second signal while the first waits raises at once: a user who presses Ctrl-C twice means it.
"""

import contextlib
import signal
import threading

# getattr: native Windows has no SIGHUP or SIGUSR1, and importing this module there must not fail before
# vae/commands/cli.py can say that the commands do not run there.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ('SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1')
                     if hasattr(signal, name))


class Stopped(BaseException):
  """A stop signal arrived. Not an `Exception`, so that no `except Exception` swallows it on its way out."""

  def __init__(self, signum, message=None, saved=False):
    """`saved`: the run saved what it had done and `message` says where (vae/run/epochs.py)."""
    super().__init__(message or f'stopped by {signal.Signals(signum).name}')
    self.signum = signum
    self.saved = saved

  @property
  def exit_status(self):
    return 128 + self.signum


_state = {'deferring': 0, 'pending': None}


def _handler(signum, frame):
  del frame
  if _state['deferring'] and _state['pending'] is None:
    _state['pending'] = signum
    return
  raise Stopped(signum)


@contextlib.contextmanager
def install():
  """Stop signals raise `Stopped` (or wait for the step, see `deferred`) while the block runs; the previous
  handlers come back afterwards. Only the main thread can set handlers: elsewhere the block changes nothing."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  # A signal the command was started with ignored stays ignored: `nohup python run.py &` is meant to survive its
  # terminal, and a shell's background job (started with SIGINT ignored) is not Ctrl-C's to stop.
  previous = {signum: signal.signal(signum, _handler) for signum in STOP_SIGNALS
              if signal.getsignal(signum) is not signal.SIG_IGN}
  _state['pending'] = None
  try:
    yield
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)
    _state['pending'] = None


@contextlib.contextmanager
def deferred():
  """A first stop signal inside the block is recorded for `pending()` instead of raising."""
  _state['deferring'] += 1
  try:
    yield
  finally:
    _state['deferring'] -= 1


def pending():
  """The number of the stop signal recorded inside `deferred()`, or None."""
  return _state['pending']
