"""The README's flag reference against vae/config.py, where every setting is declared once."""

import os
import re

from vae.config import RESUME_KEYS, RESUME_REASONS, SETTINGS
from conftest import REPO_ROOT

README = open(os.path.join(REPO_ROOT, 'README.md'), encoding='utf-8').read()


def flag_table():
  """{flag name: default as written} of the README's flag table, in its order."""
  section = README[README.index('\n## Flags\n'):]
  section = section[:section.index('\n## ', 1)]
  rows = re.findall(r'^\| `--(\w+)` \| `([^`]*)` \|', section, flags=re.MULTILINE)
  return dict(rows)


def same_value(written, default):
  if isinstance(default, bool):
    return written == str(default)
  if isinstance(default, (int, float)):
    return float(written) == default
  return written == default


def test_the_flag_table_lists_every_setting_with_its_default():
  table = flag_table()
  assert list(table) == [setting.name for setting in SETTINGS] + ['eval_only']
  for setting in SETTINGS:
    assert same_value(table[setting.name], setting.default), setting.name
  assert table['eval_only'] == 'False'


def test_the_resume_table_is_the_settings_a_resume_must_match_with_their_reasons():
  section = README[README.index('| setting | why a resume must keep it |'):]
  section = section[:section.index('\n\n')]
  rows = re.findall(r'^\| `--(\w+)` \| (.+) \|$', section, flags=re.MULTILINE)
  assert dict(rows) == RESUME_REASONS and [name for name, _ in rows] == list(RESUME_KEYS)
