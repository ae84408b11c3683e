"""Loaded at the start of every Python process the tests spawn (conftest puts this directory on PYTHONPATH).

The tests' synthetic IDX files are not MNIST, so vae/data.py would refuse them. conftest records the content
fingerprint of every synthetic file it writes, with the data set it stands for, in the file named by
VAE_TEST_KNOWN_CONTENTS; here those are added to the known contents of this process, exactly as conftest adds them
in the test process itself. A synthetic file that a test later alters has another fingerprint and stays unknown.
"""

import json
import os
import sys

_registry = os.environ.get('VAE_TEST_KNOWN_CONTENTS')
if _registry and os.path.exists(_registry):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
  from vae import data as _data

  with open(_registry) as _f:
    _data.KNOWN_CONTENTS.update({fingerprint: tuple(holds) for fingerprint, holds in json.load(_f).items()})
  del sys.path[0]
