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


def _source_strings():
  """Every string literal of the package and run.py, implicit concatenations joined (as Python's parser joins
  them), with each f-string's replacement fields as a NUL."""
  import ast
  import glob
  strings = []
  for path in glob.glob(os.path.join(REPO_ROOT, 'vae', '*.py')) + [os.path.join(REPO_ROOT, 'run.py')]:
    for node in ast.walk(ast.parse(open(path, encoding='utf-8').read())):
      if isinstance(node, ast.JoinedStr):
        strings.append(''.join(v.value if isinstance(v, ast.Constant) else '\0' for v in node.values))
      elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        strings.append(node.value)
  return strings


def test_every_message_of_the_when_things_go_wrong_table_is_one_the_code_prints():
  section = README[README.index('\n## When things go wrong\n'):]
  section = section[:section.index('\n## ', 1)]
  messages = [m for row in re.findall(r'^\| (.+?) \| .+ \|$', section, flags=re.MULTILINE)[2:]
              for m in re.findall(r'`([^`]+)`', row) if not m.startswith('--') or ' ' in m]
  assert len(messages) > 30
  strings = _source_strings()
  # What the code fills in, the README writes as a capitalised word (DIR, FILE, N, SIGTERM), "...", or an example
  # value: a number, a quoted value, a path, a data set's name, or what the operating system says. A message the
  # code builds from several strings is compared clause by clause.
  examples = ("Fashion-MNIST's", "MNIST's", 'MNIST', 'fashion_mnist', 'mnist', 'nan', 'No space left on device',
              'latent_dim', 'list', 'an integer', 'row', 'flags.json', 'metrics.csv', 'evaluation.json',
              'training images', 'test images', 'images', 'labels', 'conv', 'checkpoints')
  placeholder = re.compile('|'.join([re.escape(e) for e in examples] + [
      r"\b[A-Z][A-Z0-9_]*\b", r'\.\.\.', r"[\"'/():;,]", r'\d[\d,]*', r'\bb(?=\W)']))
  missing = []
  for message in messages:
    for fragment in (f.strip(' :;,.=-') for f in placeholder.split(message)):
      if len(fragment) >= 12 and not any(fragment in s for s in strings):
        missing.append((message, fragment))
  assert missing == [], missing


def test_the_readmes_slurm_recipe_is_the_script_in_cluster():
  block = README[README.index('```bash\n#SBATCH --array=0-9'):]
  block = block[len('```bash\n'):block.index('```', 3)]
  script = [line.split('  #')[0].rstrip() for line in
            open(os.path.join(REPO_ROOT, 'cluster', 'seeds.sbatch'), encoding='utf-8').read().splitlines()]
  shown = [line.split('  #')[0].rstrip() for line in block.splitlines()]
  # Each line the README shows is the script's, the script's longer requeue test written on one line there.
  missing = [line for line in shown if line and line not in script and not line.startswith('if [ "$status"')]
  assert missing == []
