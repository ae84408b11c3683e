"""Loaded at the start of every Python process the tests spawn (conftest puts this directory on PYTHONPATH).

* The network guard (no_network.py): no lookup, no connection beyond loopback, and every attempt logged for
  conftest to fail the test with.
* The tests' synthetic IDX files are not MNIST, so vae/data.py would refuse them. conftest records the content
  fingerprint of every synthetic file it writes, with the data set it stands for, in the file named by
  VAE_TEST_KNOWN_CONTENTS; here those are added to the known contents of this process, exactly as conftest adds
  them in the test process itself. A synthetic file that a test later alters has another fingerprint and stays
  unknown.
* VAE_TEST_REFUSING_PORT, when a test sets it: a port on 127.0.0.1 that refuses connections, where every download
  of the process is pointed (offline.py), so the process is offline because the test made it so, on a connected
  machine too.
"""

import json
import os
import sys

import no_network

no_network.install()

_registry = os.environ.get('VAE_TEST_KNOWN_CONTENTS')
_refusing_port = os.environ.get('VAE_TEST_REFUSING_PORT')
if (_registry and os.path.exists(_registry)) or _refusing_port:
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
  from vae import data as _data

  if _registry and os.path.exists(_registry):
    with open(_registry) as _f:
      _data.KNOWN_CONTENTS.update({fingerprint: tuple(holds) for fingerprint, holds in json.load(_f).items()})
  if _refusing_port:
    import offline

    offline.refuse_downloads(int(_refusing_port))
  del sys.path[0]

# Pauses a test can ask for: the process stops itself (SIGSTOP) at a known point, so that the test acts on a run
# it knows to be mid-run (or mid-start-up), however fast or slow the machine.
#   VAE_TEST_PAUSE_AFTER_EPOCH=N       right after writing the checkpoint of epoch N;
#   VAE_TEST_PAUSE_AT_STEP=S[,S2...]   as soon as a call of compiled training steps has taken the run to step S
#                                      (mid-epoch, before the loop counts those steps), or to any step listed: a
#                                      process that runs several commands one after another pauses in each;
#   VAE_TEST_PAUSE_BEFORE_TENSORFLOW=1 just before the command imports TensorFlow.
_pause_after = os.environ.get('VAE_TEST_PAUSE_AFTER_EPOCH')
_pause_at_steps = {int(step) for step in os.environ.get('VAE_TEST_PAUSE_AT_STEP', '').split(',') if step}
_pause_before_tensorflow = os.environ.get('VAE_TEST_PAUSE_BEFORE_TENSORFLOW')


def _pause():
  import signal
  os.kill(os.getpid(), signal.SIGSTOP)


def _change_on_import(module_name, change):
  """Calls change(module) once `module_name` has been imported, without importing anything earlier."""
  import importlib.abc
  import importlib.machinery

  class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
      if fullname != module_name:
        return None
      sys.meta_path.remove(self)
      spec = importlib.machinery.PathFinder.find_spec(fullname, path)
      load = spec.loader.exec_module

      def exec_module(module):
        load(module)
        change(module)

      spec.loader.exec_module = exec_module
      return spec

  sys.meta_path.insert(0, _Finder())


def _pause_in_the_training_state(state):
  save, init = state.TrainingState.save, state.TrainingState.__init__

  def save_then_pause(training):
    save(training)
    if _pause_after and training.checkpointed_epochs() == int(_pause_after):
      _pause()

  def init_then_pause_at_step(trainer, *args, **kwargs):
    init(trainer, *args, **kwargs)
    train_steps = trainer.compiled_steps

    def steps_then_pause(indices, first_step):
      losses = train_steps(indices, first_step)
      if int(first_step) + len(indices) in _pause_at_steps:
        _pause()
      return losses
    trainer.compiled_steps = steps_then_pause

  state.TrainingState.save = save_then_pause
  if _pause_at_steps:
    state.TrainingState.__init__ = init_then_pause_at_step


def _pause_before_importing_tensorflow(quiet):
  import_tensorflow = quiet.import_tensorflow

  def pause_then_import():
    _pause()
    return import_tensorflow()
  quiet.import_tensorflow = pause_then_import


if _pause_after or _pause_at_steps:
  _change_on_import('vae.run.state', _pause_in_the_training_state)
if _pause_before_tensorflow:
  _change_on_import('vae.commands.quiet', _pause_before_importing_tensorflow)
