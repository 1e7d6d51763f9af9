"""The repository's own text speaks of the software alone.

Every file that git tracks and that is text for people to read is searched:
``*.py`` (the configs too), ``*.md``, ``*.rst``, ``*.sh``, ``*.cfg``,
``*.toml``, ``*.ini``, ``*.txt``, ``*.yml``, ``*.yaml``, ``Makefile`` and
any script that starts with ``#!``. In Python files only comments and string
literals (docstrings included) are searched: a name in code, such as a
variable that holds an onnxruntime session, is code and not text. Other files
are searched whole. A word counts only on its own: letters, digits or ``_``
on either side make it part of another word, so ``InferenceSession``,
``SessionOptions`` and ``silent`` pass.

The rules, each case-insensitive:

- ``session`` and ``sessions``, except right after ``onnxruntime`` or
  ``inference`` (onnxruntime's inference session, the object that runs a
  model) and in onnxruntime's dotted configuration keys
  (``session.intra_op.allow_spinning``);
- ``helper`` and ``helpers``, except as the name of the test module
  ``tests/helpers.py``: ``helpers.py``, ``import helpers`` and
  ``from helpers import`` pass;
- ``lent``;
- an absolute path into a user's or a scratch folder of some machine:
  ``/work/``, ``/root/``, ``/home/``, ``/Users/`` or ``/tmp/`` followed by a
  name, where the ``/`` starts the path (not inside a URL or a relative
  path such as ``data/tmp/x``).

This file states the rules, so it is the one file not searched.
"""
import io
import re
import subprocess
import tokenize

import pytest
from helpers import REPO

TEXT_SUFFIXES = ('.py', '.md', '.rst', '.sh', '.cfg', '.toml', '.ini', '.txt',
                 '.yml', '.yaml')
TEXT_NAMES = ('Makefile', )
THIS_FILE = 'tests/test_wording.py'

WORD = r'(?<![A-Za-z0-9_]){}(?![A-Za-z0-9_])'
RULES = {
    'session': re.compile(WORD.format('sessions?'), re.IGNORECASE),
    'helper': re.compile(WORD.format('helpers?'), re.IGNORECASE),
    'lent': re.compile(WORD.format('lent'), re.IGNORECASE),
    'machine path': re.compile(
        r'(?<![A-Za-z0-9_.~/-])/(work|root|home|Users|tmp)/[A-Za-z0-9_.]'),
}
# What each rule lets pass: onnxruntime's sessions, the test module's name.
ALLOWED = {
    'session': re.compile(
        WORD.format(r'((onnxruntime|inference)\s+sessions?|session(\.\w+)+)'),
        re.IGNORECASE),
    'helper': re.compile(
        WORD.format(r'(helpers\.py|import helpers|from helpers import)')),
}


def text_pieces(source, is_python):
    """``(first line number, text)`` of the parts of a file to search."""
    if not is_python:
        return [(1, source)]
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return [(1, source)]
    # FSTRING_MIDDLE holds an f-string's literal text from Python 3.12 on.
    kinds = {tokenize.COMMENT, tokenize.STRING}
    kinds.add(getattr(tokenize, 'FSTRING_MIDDLE', tokenize.STRING))
    return [(token.start[0], token.string) for token in tokens
            if token.type in kinds]


def find_hits(source, is_python=False):
    """``(line number, rule, line)`` for every hit in ``source``."""
    lines = source.splitlines()
    hits = []
    for first_line, text in text_pieces(source, is_python):
        for rule, pattern in RULES.items():
            searched = text
            if rule in ALLOWED:
                # Blank what passes out, keeping every offset.
                searched = ALLOWED[rule].sub(lambda m: ' ' * len(m.group()),
                                             text)
            for match in pattern.finditer(searched):
                number = first_line + text.count('\n', 0, match.start())
                hits.append((number, rule, lines[number - 1].strip()))
    return sorted(set(hits))


def is_text(path):
    if path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
        return True
    if path.suffix == '' and path.is_file():
        with path.open('rb') as file:
            return file.read(2) == b'#!'
    return False


def tracked_text_files():
    try:
        listed = subprocess.run(['git', 'ls-files', '-z'],
                                cwd=REPO,
                                capture_output=True,
                                check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip('not a git checkout: no list of tracked files')
    names = [name for name in listed.decode().split('\0') if name]
    return [
        name for name in names
        if name != THIS_FILE and (REPO / name).is_file()
        and is_text(REPO / name)
    ]


def test_the_repository_text_speaks_of_the_software_alone():
    files = tracked_text_files()
    assert 'README.md' in files and 'tests/helpers.py' in files
    report = []
    for name in files:
        source = (REPO / name).read_text(encoding='utf-8')
        for number, rule, line in find_hits(source, name.endswith('.py')):
            report.append(f'{name}:{number}: {rule}: {line}')
    assert not report, ('text that does not speak of the software (rules in '
                        f'{THIS_FILE}):\n' + '\n'.join(report))


@pytest.mark.parametrize(
    'source, is_python, expected',
    [
        ('Measured in session 3.\n', False, [(1, 'session')]),
        ('x = 1\n# an earlier Session found\n', True, [(2, 'session')]),
        ('"""Ran on\nthe lent machine."""\n', True, [(2, 'lent')]),
        ('def f():\n    """Small helpers."""\n', True, [(2, 'helper')]),
        ('see /work/venv-min and /root/.cache\n', False,
         [(1, 'machine path')]),
        ('VENV=/home/me/x make test\n', False, [(1, 'machine path')]),
        ("path = '/tmp/run1'\n", True, [(1, 'machine path')]),
        # Names in code, the test module's name and other words pass.
        ('session = onnxruntime.InferenceSession(path)\n', True, []),
        ('options = ort.SessionOptions()  # silent\n', True, []),
        ('def f():\n    """An onnxruntime session for a file."""\n', True,
         []),
        ('the inference\nsessions of onnxruntime\n', False, []),
        ("o.add('session.intra_op.allow_spinning', '0')\n", True, []),
        ('the session. It ran\n', False, [(1, 'session')]),
        ('one session per onnxruntime session\n', False, [(1, 'session')]),
        ('from helpers import REPO\nimport helpers\n', True, []),
        ('Shared fixtures live in `tests/helpers.py`.\n', False, []),
        ('https://example.org/home/x, data/tmp/x, ~/work/x\n', False, []),
        ('session_id and lently\n', False, []),
    ])
def test_the_rules_on_examples(source, is_python, expected):
    assert [hit[:2] for hit in find_hits(source, is_python)] == expected
