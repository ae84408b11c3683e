"""The one command-line layer of every entry point.

The four commands (`python run.py`, the plain loop's, explore's and report's, each also an installed console
script: `vae-run`, `vae-plain-loop`, `vae-explore`, `vae-report`) each declare their flags on a `Command` of their
own and hand it their body, `body(flag_values, arguments) -> exit status`.
`Command.main` then does for all four what a user expects of any of them:

* on a system without POSIX file locks and signals (native Windows) it ends with one `error:` line;
* `--help` (or -h, --helpshort, --helpfull) prints the command's own summary and flags, and nothing else;
* a malformed or unknown flag, or an argument the command does not take, ends with one `error:` line;
* a `VAEError` from the body (a problem the user can fix) ends with its one line, through `vae.commands.errors.fail`;
* a stop signal (Ctrl-C, SIGTERM, SIGHUP, SIGUSR1; vae/run/signals.py) ends it with one line and status 128 + the
  signal's number, never a traceback: at once outside a training run's steps (during TensorFlow's start-up, say),
  and after saving at the step inside them (vae/run/epochs.py);
* a closed standard output (`python run.py | head -1`) does not stop it: what it would print goes nowhere, and
  it runs to its end as if nothing had happened.

Nothing here imports TensorFlow: each body checks what it can first and only then starts it.
"""

import errno
import os
import sys
import textwrap

from absl import flags

from vae.run import signals
from vae.commands.errors import VAEError, fail

HELP_ARGUMENTS = ('-h', '--help', '--helpshort', '--helpfull')

# A run locks its output directory with a POSIX file lock (vae/run/fileio.py) and stops at a step on POSIX signals
# (vae/run/signals.py); native Windows has neither.
UNSUPPORTED_SYSTEM = ('{program} runs on Linux and macOS; native Windows is not supported (a run needs POSIX file '
                      'locks and signals)')


class Command:
  """One entry point: its name as typed, a summary for --help, its flags, and whether it takes arguments."""

  def __init__(self, program, summary, arguments=None, script=None):
    """`program`: how a user starts it from a clone (`python run.py`); `script`: its console script's name
    (`vae-run`), which --help and the error lines name instead when it was started that way; `arguments`: how
    --help names its positional arguments (`DIR [DIR ...]`), or None if it takes none."""
    self.program = self.typed = program
    self.script = script
    self.summary = summary
    self.arguments = arguments
    self.flags = flags.FlagValues()  # this command's flags alone, apart from absl's global ones

  def help_text(self):
    usage = f'usage: {self.program} [--flag=value ...]' + (f' {self.arguments}' if self.arguments else '')
    lines = [usage, '', self.summary.strip(), '',
             'flags (--flagfile=FILE reads more from FILE, one per line; a flag after it overrides the file\'s):']
    for name, flag in self.flags._flags().items():  # in the order they were defined
      if name != flag.name:  # a short alias
        continue
      lines.append(f'  --{name} (default: {flag.default_as_str or "none"})')
      lines.extend(textwrap.wrap(flag.help, width=100, initial_indent='      ', subsequent_indent='      '))
    return '\n'.join(lines) + '\n'

  def main(self, body, argv):
    """Parses `argv` (argv[0] the program) and runs `body(flag_values, arguments)`; returns the exit status."""
    started_as_script = self.script is not None and os.path.basename(argv[0]) == self.script
    self.program = self.script if started_as_script else self.typed
    if os.name != 'posix':
      return fail(UNSUPPORTED_SYSTEM.format(program=self.program))
    stdout = sys.stdout
    sys.stdout = _SurvivesAClosedPipe(stdout)
    try:
      with signals.install():
        return self._parse_and_run(body, argv)
    finally:
      sys.stdout = stdout

  def _parse_and_run(self, body, argv):
    try:
      if any(argument in HELP_ARGUMENTS for argument in argv[1:]):
        sys.stdout.write(self.help_text())
        return 0
      self.flags.unparse_flags()  # a fresh parse for every command line (the tests run several in one process)
      try:
        arguments = self.flags(list(argv))[1:]
      except flags.Error as e:  # absl prefixes some of its messages, an unreadable --flagfile's, with 'ERROR::'
        return fail(f'{str(e).removeprefix("ERROR:: ")} (see {self.program} --help)')
      if arguments and not self.arguments:
        return fail(f'unexpected arguments: {" ".join(arguments)} (flags look like --name=value)')
      _quiet_absl_logging()
      return body(self.flags, arguments) or 0
    except VAEError as e:
      return fail(str(e), status=e.exit_status)
    except signals.Stopped as e:
      return fail(str(e), status=e.exit_status)
    except KeyboardInterrupt:
      return fail('interrupted', status=130)


class _SurvivesAClosedPipe:
  """sys.stdout, until the reader of a pipe goes away: from then on what is written goes to /dev/null (the
  descriptor too, so that nothing complains at exit), and the command carries on."""

  def __init__(self, stream):
    self._stream = stream

  def _closed(self):
    devnull = open(os.devnull, 'w')
    try:
      os.dup2(devnull.fileno(), self._stream.fileno())
    except (OSError, ValueError, AttributeError):
      pass
    self._stream = devnull

  def write(self, text):
    try:
      return self._stream.write(text)
    except BrokenPipeError:
      self._closed()
      return len(text)
    except OSError as e:
      if e.errno != errno.EPIPE:
        raise
      self._closed()
      return len(text)

  def flush(self):
    try:
      self._stream.flush()
    except BrokenPipeError:
      self._closed()

  def __getattr__(self, name):
    return getattr(self._stream, name)


def was_given(flag_values, name):
  """Whether flag `name` was on the command line (rather than left at its default)."""
  return flag_values[name].present > 0


def _quiet_absl_logging():
  """absl's Python logging, which TensorFlow's Python side writes through, at warnings and above, and without
  absl's "logging before flag parsing" preamble (the global flags are not ours to parse)."""
  from absl import logging

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  logging.set_verbosity(logging.WARNING)
