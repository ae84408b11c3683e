"""The README and docs/ against the code: the flag reference against vae/run/config.py, where every setting is
declared once; every error line; every command's paths; every link; the CI command."""

import os
import re

from vae.run.config import RESUME_KEYS, RESUME_REASONS, SETTINGS
from conftest import REPO_ROOT



def _read(*path):
  return open(os.path.join(REPO_ROOT, *path), encoding='utf-8').read()


README = _read('README.md')
FLAGS_DOC = _read('docs', 'flags.md')
TROUBLESHOOTING = _read('docs', 'troubleshooting.md')
CLUSTER = _read('docs', 'cluster.md')
INSTALLING = _read('docs', 'installing.md')


def flag_table():
  """{flag name: default as written} of the README's flag table, in its order."""
  section = FLAGS_DOC[:FLAGS_DOC.index('| setting | why a resume must keep it |')]
  rows = re.findall(r'^\| `--(\w+)` \| `?([^`|]*?)`? \|', section, flags=re.MULTILINE)
  return dict(rows)


def same_value(written, default):
  if isinstance(default, bool):
    return written == str(default)
  if isinstance(default, (int, float)):
    return float(written) == default
  if default == '':
    return written == '(none)'
  return written == default


def test_the_flag_table_lists_every_setting_with_its_default():
  table = flag_table()
  assert list(table) == [setting.name for setting in SETTINGS] + ['eval_only']
  for setting in SETTINGS:
    assert same_value(table[setting.name], setting.default), setting.name
  assert table['eval_only'] == 'False'


def test_the_resume_table_is_the_settings_a_resume_must_match_with_their_reasons():
  section = FLAGS_DOC[FLAGS_DOC.index('| setting | why a resume must keep it |'):]
  section = section[:section.index('\n\n')]
  rows = re.findall(r'^\| `--(\w+)` \| (.+) \|$', section, flags=re.MULTILINE)
  assert dict(rows) == RESUME_REASONS and [name for name, _ in rows] == list(RESUME_KEYS)


def _source_strings():
  """Every string literal of the package and run.py, implicit concatenations joined (as Python's parser joins
  them), with each f-string's replacement fields as a NUL."""
  import ast
  import glob
  strings = []
  for path in glob.glob(os.path.join(REPO_ROOT, 'vae', '**', '*.py'), recursive=True) + [os.path.join(REPO_ROOT, 'run.py')]:
    for node in ast.walk(ast.parse(open(path, encoding='utf-8').read())):
      if isinstance(node, ast.JoinedStr):
        strings.append(''.join(v.value if isinstance(v, ast.Constant) else '\0' for v in node.values))
      elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        strings.append(node.value)
  return strings


def test_every_message_of_the_when_things_go_wrong_table_is_one_the_code_prints():
  section = TROUBLESHOOTING
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
  block = CLUSTER[CLUSTER.index('```bash\n#SBATCH --array=0-9'):]
  block = block[len('```bash\n'):block.index('```', 3)]
  script = [line.split('  #')[0].rstrip() for line in
            open(os.path.join(REPO_ROOT, 'cluster', 'seeds.sbatch'), encoding='utf-8').read().splitlines()]
  shown = [line.split('  #')[0].rstrip() for line in block.splitlines()]
  # Each line the README shows is the script's, the script's longer requeue test written on one line there.
  missing = [line for line in shown if line and line not in script and not line.startswith('if [ "$status"')]
  assert missing == []


DOCS = {'README.md': README, **{
    os.path.join('docs', name): open(os.path.join(REPO_ROOT, 'docs', name), encoding='utf-8').read()
    for name in sorted(os.listdir(os.path.join(REPO_ROOT, 'docs'))) if name.endswith('.md')}}
# What a user types: a line of a ```bash block, or an inline `...` that starts as a command does.
_COMMAND_START = re.compile(r'^(?:\.venv/bin/)?(?:python3?|pip|bash|sbatch|parallel|tensorboard|tfds|git|DATA_DIR=)\b')
# A path that leaves the clone: ../x, ~/x or /x, where a command would take it (after a space, '=', a quote, '>').
_OUTSIDE_PATH = re.compile(r'''(?:^|(?<=[\s='"(>]))((?:\.\./|~/|/)[^\s'"`);]*)''')


def _commands(text):
  commands = []
  for block in re.findall(r'```bash\n(.*?)```', text, flags=re.DOTALL):
    commands.extend(line for line in block.replace('\\\n', ' ').splitlines() if line.strip())
  commands.extend(span for span in re.findall(r'`([^`\n]+)`', text) if _COMMAND_START.match(span))
  return commands


def test_no_command_names_a_path_outside_the_clone_but_the_documented_data_directories():
  from vae.data import IDX_NAMES, resolve_data_dir
  allowed = {resolve_data_dir(name) for name in IDX_NAMES + ('kmnist',)} | {'/dev/null'}  # the defaults
  outside = [(doc, command, path) for doc, text in DOCS.items() for command in _commands(text)
             for path in _OUTSIDE_PATH.findall(command) if path.rstrip('.,') not in allowed]
  assert len([c for text in DOCS.values() for c in _commands(text)]) > 30
  assert outside == [], outside
  assert '`--data_dir=DIR`' in README  # the one way the README names a data directory of the user's choosing


def test_the_supported_pythons_the_readme_names_are_those_pyproject_toml_requires():
  import tomllib
  from packaging.specifiers import SpecifierSet
  with open(os.path.join(REPO_ROOT, 'pyproject.toml'), 'rb') as f:
    requires = SpecifierSet(tomllib.load(f)['project']['requires-python'])
  supported = [f'3.{minor}' for minor in range(0, 40) if f'3.{minor}' in requires]
  named = re.search(r'\*\*Python (3\.\d+), (3\.\d+) or (3\.\d+)\.\*\*', INSTALLING)
  assert named and list(named.groups()) == supported
  assert f"not in '{requires}'" in INSTALLING  # the line pip prints on any other Python
  assert f'Python {supported[0]} to {supported[-1]}' in README  # the line pip prints on any other Python


def _anchor(heading):
  """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces as hyphens."""
  return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def test_every_link_between_the_docs_reaches_a_file_and_heading_that_exist():
  broken = []
  for doc, text in DOCS.items():
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
      if re.match(r'\w+://', target):
        continue
      path, _, anchor = target.partition('#')
      file = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
      if not os.path.exists(os.path.join(REPO_ROOT, file)):
        broken.append((doc, target))
      elif anchor:
        headings = re.findall(r'^#+ (.+)$', DOCS.get(file, ''), flags=re.MULTILINE)
        if anchor not in {_anchor(h) for h in headings}:
          broken.append((doc, target))
  assert broken == []


def test_ci_runs_exactly_the_readmes_test_command():
  commands = [line for block in re.findall(r'```bash\n(.*?)```', README, flags=re.DOTALL)
              for line in block.splitlines() if line.endswith('-m pytest -q tests')]
  ci = [line.replace(' install -q ', ' install ') for line in
        open(os.path.join(REPO_ROOT, '.ci', 'run'), encoding='utf-8').read().splitlines() if 'pytest' in line]
  assert len(commands) == 1 and ci == commands
  assert commands[0].startswith('python3 -m venv --upgrade-deps .venv && ')  # a pip that checks Requires-Python first
