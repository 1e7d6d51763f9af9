import importlib.util
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
spec = importlib.util.spec_from_file_location(
    'gpu_check', osp.join(ROOT, 'tools', 'gpu_check.py'))
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is here')
def test_without_cuda_it_says_so_in_one_line(tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, 'tools/gpu_check.py', '--out', str(tmp_path / 'o')],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == ''
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert 'CUDA is not available' in result.stderr
    assert not (tmp_path / 'o').exists()
    assert time.monotonic() - started < 30


def test_junit_counts_name_failures_and_skip_reasons(tmp_path):
    xml = tmp_path / 'pytest.xml'
    xml.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.test_gpu" name="test_ok"/>'
        '<testcase classname="tests.test_gpu" name="test_bad">'
        '<failure message="assert 1 == 2"/></testcase>'
        '<testcase classname="tests.test_gpu" name="test_broken">'
        '<error message="fixture"/></testcase>'
        '<testcase classname="tests.test_gpu" name="test_two">'
        '<skipped message="needs 2 GPUs"/></testcase>'
        '</testsuite></testsuites>')
    counts = gpu_check.junit_counts(str(xml))
    assert (counts['passed'], counts['failed'], counts['errors'],
            counts['skipped']) == (1, 1, 1, 1)
    assert counts['failures'] == [
        'tests.test_gpu::test_bad', 'tests.test_gpu::test_broken'
    ]
    assert counts['skips'] == ['tests.test_gpu::test_two: needs 2 GPUs']


def test_a_cut_run_is_counted_from_its_verbose_log():
    log = ('tests/test_gpu.py::test_a PASSED                  [ 33%]\n'
           'tests/test_gpu.py::test_b[bf16] FAILED            [ 66%]\n'
           'tests/test_gpu.py::test_c SKIPPED (no bf16)       [100%]\n'
           'tests/test_gpu.py::test_d ')
    counts = gpu_check.verbose_log_counts(log)
    assert (counts['passed'], counts['failed'], counts['skipped']) == (1, 1,
                                                                       1)
    assert counts['failures'] == ['tests/test_gpu.py::test_b[bf16]']


def test_build_minutes_come_from_the_setup_log():
    built = ('[setup] building for TORCH_CUDA_ARCH_LIST=9.0 (the visible '
             'NVIDIA H200; set TORCH_CUDA_ARCH_LIST to choose)\n'
             '[setup] built mmcv 2.1.0 (cuda13.0-sm90) in 5.7 min\n')
    assert gpu_check.mmcv_build(built) == (5.7, '9.0')
    assert gpu_check.mmcv_build('[setup] up to date (.venv)\n') == ('cached',
                                                                    None)


def test_a_step_past_its_limit_is_killed_with_its_children(tmp_path):
    child = ('import subprocess, sys; subprocess.Popen([sys.executable, "-c",'
             ' "import time; time.sleep(60)"]); print("started", flush=True);'
             ' import time; time.sleep(60)')
    log = tmp_path / 'step.log'
    started = time.monotonic()
    step = gpu_check.run_step([sys.executable, '-c', child], 2, str(log))
    assert step['timed_out'] and step['returncode'] != 0
    assert time.monotonic() - started < 20
    assert log.read_text() == 'started\n'
    assert subprocess.run(['pgrep', '-f', 'time.sleep\\(60\\)'],
                          capture_output=True).stdout == b''
