"""The suite's longest files start first (conftest's LONGEST_FIRST), so that its workers end together."""

import os
import types

import conftest
from conftest import REPO_ROOT


def test_every_file_named_longest_first_exists():
  missing = [name for name in conftest.LONGEST_FIRST if not os.path.exists(os.path.join(REPO_ROOT, 'tests', name))]
  assert missing == [], 'LONGEST_FIRST names files that are gone: ' + ', '.join(missing)


def test_the_longest_files_come_first_and_each_file_keeps_its_order():
  def item(name, test):
    return types.SimpleNamespace(path=os.path.join(REPO_ROOT, 'tests', name), test=test)
  first, second = conftest.LONGEST_FIRST[:2]
  items = [item('test_viz.py', 'a'), item(second, 'b'), item('test_cli.py', 'c'), item(first, 'd'),
           item(second, 'e'), item('test_viz.py', 'f')]
  conftest.pytest_collection_modifyitems(items)
  assert [(os.path.basename(i.path), i.test) for i in items] == [
      (first, 'd'), (second, 'b'), (second, 'e'), ('test_viz.py', 'a'), ('test_cli.py', 'c'), ('test_viz.py', 'f')]
