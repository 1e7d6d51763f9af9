"""tools/setup/mmcv_wheel.sh, the parts of the set-up that show the mmcv
build's progress and strip its wheel, on small inputs."""
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers import REPO

# pip -v indents its subprocesses' lines; ninja writes "[k/N] command"
# when the k-th of N files is compiled, and compilers add warnings.
BUILD_LOG = ''.join(
    [
        'Processing ./mmcv-2.1.0\n',
        '  Running command python setup.py bdist_wheel\n',
        '  ninja -v -j 2\n',
    ] + [
        f'  [{k}/23] c++ -MMD -c mmcv/ops/csrc/pytorch/op_{k}.cpp\n'
        '  op.cpp:12: warning: unused variable [-Wunused-variable]\n'
        '     12 |   int i = a[3/4];\n'
        for k in range(1, 24)
    ] + ['  c++ -shared build/*.o -o _ext.so\n', 'Successfully built mmcv\n'])


def shell(script, *args, stdin='', check=True):
    """``script`` in bash with tools/setup/mmcv_wheel.sh sourced."""
    return subprocess.run(
        ['bash', '-c', f'source tools/setup/mmcv_wheel.sh; {script}', 'bash',
         *map(str, args)],
        cwd=REPO, input=stdin, capture_output=True, text=True, check=check)


def test_build_progress_shows_every_tenth_and_the_last_file():
    # The build started 150 s before the filter runs: 2.5 minutes.
    lines = shell('SECONDS=1000; build_progress 10 850',
                  stdin=BUILD_LOG).stdout.splitlines()
    assert lines == [
        '[setup] compiled 10 of 23 files, 2.5 min',
        '[setup] compiled 20 of 23 files, 2.5 min',
        '[setup] compiled 23 of 23 files, 2.5 min',
    ]


TORCH_EXTENSION = """
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

setup(
    name='tiny',
    version='0.1',
    packages=['tiny'],
    ext_modules=[
        CppExtension('tiny._ext', [f'part{i}.cpp' for i in range(3)])
    ],
    cmdclass=dict(build_ext=BuildExtension))
"""


def test_build_wheel_shows_ninjas_progress_and_keeps_no_debug_info(
        tmp_path):
    """What the set-up does to mmcv, on a 3-file torch extension."""
    if not (shutil.which('c++') and shutil.which('ninja', path=':'.join(
            [sysconfig.get_path('scripts'), os.environ['PATH']]))):
        pytest.skip('needs c++ and ninja')
    src = tmp_path / 'src'
    (src / 'tiny').mkdir(parents=True)
    (src / 'tiny' / '__init__.py').write_text('')
    (src / 'setup.py').write_text(TORCH_EXTENSION)
    for i in range(3):
        (src / f'part{i}.cpp').write_text(f'int part{i}() {{ return {i}; }}\n')
    log = tmp_path / 'build.log'
    printed = shell('build_wheel "$@"', sys.executable, src,
                    tmp_path / 'wheels', log, 0).stdout.splitlines()
    assert printed[0] == f'[setup] compiling; the whole log goes to {log}'
    assert printed[1].startswith('[setup] compiled 3 of 3 files, ')
    assert len(printed) == 2
    assert '[3/3] ' in log.read_text() and ' -g0 ' in log.read_text()
    wheel, = (tmp_path / 'wheels').iterdir()
    assert b'.debug_info' not in library_bytes(wheel)
    # A failed build fails the function, not just its progress filter.
    (src / 'setup.py').write_text('raise SystemExit("broken")\n')
    failed = shell('build_wheel "$@"', sys.executable, src,
                   tmp_path / 'again', log, 0, check=False)
    assert failed.returncode != 0
    assert 'broken' in log.read_text()


EXTENSION = r'''
#include <Python.h>

static PyObject *answer(PyObject *self, PyObject *args) {
    return PyLong_FromLong(42);
}
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, NULL},
                                {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1,
                                    methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
'''


@pytest.fixture
def debug_wheel(tmp_path):
    """A wheel of package ``tiny`` with a C extension built with -g."""
    include = sysconfig.get_paths()['include']
    if not (shutil.which('gcc') and shutil.which('strip')
            and Path(include, 'Python.h').exists()):
        pytest.skip('needs gcc, strip and the Python headers')
    tree = tmp_path / 'tree' / 'tiny-0.1'
    (tree / 'tiny').mkdir(parents=True)
    (tree / 'tiny' / '__init__.py').write_text('')
    source = tmp_path / 'ext.c'
    source.write_text(EXTENSION)
    library = tree / 'tiny' / f"_ext{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run([
        'gcc', '-g', '-O0', '-shared', '-fPIC', f'-I{include}',
        str(source), '-o',
        str(library)
    ], check=True)
    info = tree / 'tiny-0.1.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: tiny\nVersion: 0.1\n')
    (info / 'WHEEL').write_text('Wheel-Version: 1.0\nGenerator: test\n'
                                'Root-Is-Purelib: false\nTag: py3-none-any\n')
    (tmp_path / 'wheels').mkdir()
    subprocess.run([
        sys.executable, '-m', 'wheel', 'pack', '-d',
        str(tmp_path / 'wheels'),
        str(tree)
    ], check=True, capture_output=True)
    return tmp_path / 'wheels' / 'tiny-0.1-py3-none-any.whl'


def library_bytes(wheel):
    with zipfile.ZipFile(wheel) as archive:
        name, = [n for n in archive.namelist() if n.endswith('.so')]
        return archive.read(name)


def test_strip_wheel_drops_the_debug_info_and_the_wheel_still_works(
        debug_wheel, tmp_path):
    assert b'.debug_info' in library_bytes(debug_wheel)
    before = debug_wheel.stat().st_size
    printed = shell('strip_wheel "$1" "$2"', debug_wheel,
                    sys.executable).stdout
    assert printed.startswith('[setup] stripped the debug info of '
                              'tiny-0.1-py3-none-any.whl: ')
    assert debug_wheel.stat().st_size < before
    assert b'.debug_info' not in library_bytes(debug_wheel)
    assert [p.name for p in debug_wheel.parent.iterdir()] == [
        debug_wheel.name
    ]
    # wheel unpack checks every file against the hashes in RECORD.
    subprocess.run([
        sys.executable, '-m', 'wheel', 'unpack', '-d',
        str(tmp_path / 'check'),
        str(debug_wheel)
    ], check=True, capture_output=True)
    target = tmp_path / 'target'
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
        '--no-index', '--target',
        str(target),
        str(debug_wheel)
    ], check=True, capture_output=True)
    answer = subprocess.run([
        sys.executable, '-c', 'import tiny._ext as e; print(e.answer())'
    ], cwd=target, check=True, capture_output=True, text=True).stdout
    assert answer == '42\n'


def test_strip_wheel_leaves_a_wheel_it_cannot_repack(debug_wheel):
    before = debug_wheel.read_bytes()
    printed = shell('strip_wheel "$1" false', debug_wheel).stdout
    assert 'warning: could not strip' in printed
    assert debug_wheel.read_bytes() == before
    assert list(debug_wheel.parent.iterdir()) == [debug_wheel]


def test_download_sdist_holds_the_build_environments_setuptools_below_81(
        tmp_path):
    """mmcv's setup.py imports pkg_resources, which setuptools 81 removed;
    pip prepares an sdist's metadata in an isolated environment with the
    newest setuptools even to download it, unless a constraint holds it."""
    fake = tmp_path / 'python'
    fake.write_text('#!/usr/bin/env bash\n'
                    'echo "args: $*"\n'
                    'echo "constraint: $(cat "$PIP_CONSTRAINT")"\n')
    fake.chmod(0o755)
    out = shell('download_sdist "$1" "$2" 2.1.0 --no-index', fake,
                tmp_path / 'src').stdout
    assert 'constraint: setuptools<81' in out
    assert ('download --no-deps --no-binary :all: --no-cache-dir --no-index '
            f'-d {tmp_path / "src"} mmcv==2.1.0') in out
