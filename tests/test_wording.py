"""The repository's own text speaks of the software alone.

Every file that git tracks and that is text for people to read is searched,
this one included: ``*.py`` (the configs too), ``*.md``, ``*.rst``,
``*.sh``, ``*.cfg``, ``*.toml``, ``*.ini``, ``*.txt``, ``*.yml``,
``*.yaml``, ``Makefile`` and any script that starts with ``#!``. In Python
files only comments and string literals (docstrings included) are searched:
a name in code is code and not text. Other files are searched whole. A word
counts only on its own: letters, digits or ``_`` on either side make it
part of another word, so onnxruntime's class names and ``silent`` pass.

The rules, each case-insensitive, with the words in ``RULES``:

- the word for one sitting of work on the project, singular or plural,
  except right after ``onnxruntime`` or ``inference`` (onnxruntime's object
  that runs a model) and as the first part of onnxruntime's dotted
  configuration keys;
- the word for someone who assists, singular or plural, except as the name
  of the test module of shared code (``from ... import``, ``import ...``
  and its file name pass);
- the word for a machine on loan;
- an absolute path into a user's or a scratch folder of some machine
  (the folders in ``MACHINE_FOLDERS``) followed by a name, where the ``/``
  starts the path (not inside a URL or a relative path such as
  ``data/x/y``).

The words and folders are spelled in pieces here, so that this file, which
must name them, holds none of them and passes its own search.
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

# Spelled in pieces: see the module docstring.
RUN_WORD, ASSIST_WORD, LOAN_WORD = 'ses' + 'sion', 'hel' + 'per', 'le' + 'nt'
MACHINE_FOLDERS = ('wo' + 'rk', 'ro' + 'ot', 'ho' + 'me', 'Us' + 'ers',
                   't' + 'mp')

WORD = r'(?<![A-Za-z0-9_]){}(?![A-Za-z0-9_])'
RULES = {
    RUN_WORD: re.compile(WORD.format(RUN_WORD + 's?'), re.IGNORECASE),
    ASSIST_WORD: re.compile(WORD.format(ASSIST_WORD + 's?'), re.IGNORECASE),
    LOAN_WORD: re.compile(WORD.format(LOAN_WORD), re.IGNORECASE),
    'machine path': re.compile(
        r'(?<![A-Za-z0-9_.~/-])/({})/[A-Za-z0-9_.]'.format(
            '|'.join(MACHINE_FOLDERS))),
}
# What each rule lets pass: onnxruntime's objects and configuration keys,
# the name of the test module of shared code.
ALLOWED = {
    RUN_WORD: re.compile(
        WORD.format(r'((onnxruntime|inference)\s+{0}s?|{0}(\.\w+)+)'.format(
            RUN_WORD)), re.IGNORECASE),
    ASSIST_WORD: re.compile(
        WORD.format(r'({0}s\.py|import {0}s|from {0}s import)'.format(
            ASSIST_WORD))),
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
        if (REPO / name).is_file() and is_text(REPO / name)
    ]


def test_the_repository_text_speaks_of_the_software_alone():
    files = tracked_text_files()
    assert 'README.md' in files and f'tests/{ASSIST_WORD}s.py' in files
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
        ('Measured in {s} 3.\n', False, [(1, '{s}')]),
        ('x = 1\n# an earlier {S} found\n', True, [(2, '{s}')]),
        ('"""Ran on\nthe {l} machine."""\n', True, [(2, '{l}')]),
        ('def f():\n    """Small {h}s."""\n', True, [(2, '{h}')]),
        ('see /{w}/venv-min and /{r}/.cache\n', False,
         [(1, 'machine path')]),
        ('VENV=/{home}/me/x make test\n', False, [(1, 'machine path')]),
        ("path = '/{t}/run1'\n", True, [(1, 'machine path')]),
        # Names in code, the test module's name and other words pass.
        ('{s} = onnxruntime.InferenceSession(path)\n', True, []),
        ('options = ort.SessionOptions()  # silent\n', True, []),
        ('def f():\n    """An onnxruntime {s} for a file."""\n', True,
         []),
        ('the inference\n{s}s of onnxruntime\n', False, []),
        ("o.add('{s}.intra_op.allow_spinning', '0')\n", True, []),
        ('the {s}. It ran\n', False, [(1, '{s}')]),
        ('one {s} per onnxruntime {s}\n', False, [(1, '{s}')]),
        ('from {h}s import REPO\nimport {h}s\n', True, []),
        ('Shared fixtures live in `tests/{h}s.py`.\n', False, []),
        ('https://example.org/{home}/x, data/{t}/x, ~/{w}/x\n', False, []),
        ('{s}_id and {l}ly\n', False, []),
    ])
def test_the_rules_on_examples(source, is_python, expected):
    words = dict(
        s=RUN_WORD,
        S=RUN_WORD.capitalize(),
        h=ASSIST_WORD,
        l=LOAN_WORD,
        **dict(zip(('w', 'r', 'home', 'U', 't'), MACHINE_FOLDERS)))
    source = source.format(**words)
    expected = [(line, rule.format(**words)) for line, rule in expected]
    assert [hit[:2] for hit in find_hits(source, is_python)] == expected
