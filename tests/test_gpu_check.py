import json
import os.path as osp
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from helpers import REPO

from fasternet_mm import gpu_check


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is here')
def test_without_cuda_it_says_so_in_one_line(tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable, 'tools/setup/gpu_check.py', '--out',
            str(tmp_path / 'o')
        ],
        cwd=REPO,
        capture_output=True,
        text=True)
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


class FakeMachine:
    """Replays ``gpu_check.main`` on a fake clock and a fake GPU: each step
    takes ``seconds[step]`` or is cut at its limit, and leaves what the real
    one leaves (a cut benchmark its first section only)."""

    def __init__(self, monkeypatch, **seconds):
        self.now = 0.0
        self.seconds = seconds
        self.calls = []
        monkeypatch.setattr(
            gpu_check, 'time',
            SimpleNamespace(monotonic=lambda: self.now,
                            strftime=time.strftime))
        monkeypatch.setattr(gpu_check, 'cuda_or_exit', lambda: FAKE_TORCH)
        monkeypatch.setattr(gpu_check, 'nvcc_version', lambda: '13.0')
        monkeypatch.setattr(gpu_check, 'run_step', self.run_step)

    def run_step(self, cmd, limit, log_path, env=None):
        out = osp.dirname(log_path)
        step = ('setup' if 'tools/setup/setup_env.sh' in cmd else
                'bench' if 'tools/benchmark.py' in cmd else 'tests')
        self.calls.append((step, limit))
        cut = self.seconds[step] > limit
        seconds = min(self.seconds[step], limit)
        self.now += seconds
        with open(log_path, 'w') as log:
            if step == 'setup' and not cut:
                log.write('[setup] built mmcv 2.1.0 (cuda13.0-sm90) in '
                          f'{seconds / 60:.1f} min\n')
        if step == 'bench':
            finished = ['gpu'] if cut else ['gpu', 'gpu_mask_rcnn']
            with open(osp.join(out, gpu_check.BENCH_JSON), 'w') as f:
                json.dump(dict(finished=finished, complete=not cut), f)
        if step == 'tests' and not cut:
            with open(osp.join(out, 'pytest.xml'), 'w') as f:
                f.write('<testsuite><testcase classname="t" name="a"/>'
                        '</testsuite>')
        return dict(command=' '.join(cmd), limit_s=limit,
                    returncode=-15 if cut else 0, timed_out=cut,
                    seconds=seconds)

    def check(self, out, *args):
        started = self.now
        code = gpu_check.main(['--out', str(out), *args])
        report = json.loads((out / 'gpu_check.json').read_text())
        return code, report, self.now - started


FAKE_TORCH = SimpleNamespace(
    __version__='2.11.0+cu130',
    version=SimpleNamespace(cuda='13.0'),
    cuda=SimpleNamespace(
        get_device_name=lambda index=0: 'NVIDIA H200',
        device_count=lambda: 1,
        get_device_capability=lambda index=0: (9, 0)))


def test_defaults_leave_bench_and_tests_their_time_after_a_long_build(
        monkeypatch, tmp_path):
    # The mmcv build of a bare machine takes 6-7 minutes.
    machine = FakeMachine(monkeypatch, setup=420, bench=140, tests=200)
    code, report, _ = machine.check(tmp_path)
    assert machine.calls == [('setup', 480), ('bench', 150), ('tests', 240)]
    assert code == 0 and report['passed'] and report['cut'] == []
    assert report['mmcv_build_minutes'] == 7.0
    assert report['benchmark']['complete']
    assert report['steps']['tests']['passed'] == 1


def test_a_cut_benchmark_keeps_its_finished_sections(monkeypatch, tmp_path):
    machine = FakeMachine(monkeypatch, setup=420, bench=400, tests=200)
    code, report, _ = machine.check(tmp_path)
    assert code == 1 and not report['passed'] and report['cut'] == ['bench']
    assert report['benchmark']['finished'] == ['gpu']
    assert report['steps']['tests']['passed'] == 1  # it still ran, in full
    assert machine.calls[-1] == ('tests', 240)


def test_two_runs_under_a_budget_each_make_one_report(
        monkeypatch, tmp_path):
    machine = FakeMachine(monkeypatch, setup=420, bench=140, tests=200)
    code, first, seconds = machine.check(tmp_path, '--only', 'setup,bench',
                                         '--budget', '600')
    assert machine.calls == [('setup', 480), ('bench', 150)]
    assert code == 0 and first['passed'] and seconds <= 600
    assert set(first['steps']) == {'setup', 'bench'}
    code, second, seconds = machine.check(tmp_path, '--only', 'tests',
                                          '--budget', '600')
    assert machine.calls[2:] == [('tests', 240)]
    assert code == 0 and second['passed'] and seconds <= 600
    assert list(second['steps']) == ['setup', 'bench', 'tests']
    for step in ('setup', 'bench'):
        assert second['steps'][step]['from_run'] == first['run']
    assert 'from_run' not in second['steps']['tests']
    assert second['benchmark'] == first['benchmark']
    assert second['mmcv_build_minutes'] == 7.0


def test_a_budget_keeps_later_steps_their_minimum(monkeypatch, tmp_path):
    # A build past its limit is cut, and what needs it does not run.
    machine = FakeMachine(monkeypatch, setup=1000, bench=140, tests=200)
    code, report, seconds = machine.check(tmp_path, '--only', 'setup,bench',
                                          '--budget', '600')
    assert machine.calls == [('setup', 480)]
    assert report['cut'] == ['setup'] and code == 1
    assert report['steps']['bench']['not_run'] == 'set-up failed or was cut'
    # A slow build leaves the later steps their minimum, not less.
    machine = FakeMachine(monkeypatch, setup=480, bench=140, tests=200)
    machine.check(tmp_path, '--budget', '600')
    assert machine.calls == [('setup', 480), ('bench', 60), ('tests', 60)]


def test_only_names_a_bad_step(capsys):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(['--only', 'setup,benchmark'])
    assert "'benchmark' in 'setup,benchmark' is not a step" in \
        capsys.readouterr().err


def test_the_tool_runs_before_mmengine_is_installed():
    """The check runs before its set-up installs mmengine and mmcv: the
    tool and the check import neither."""
    script = (
        'import runpy, sys\n'
        "sys.modules.update(mmengine=None, mmcv=None, fasternet_mm=None)\n"
        "sys.argv = ['gpu_check.py', '--help']\n"
        "runpy.run_path('tools/setup/gpu_check.py', run_name='__main__')\n")
    result = subprocess.run([sys.executable, '-c', script],
                            cwd=REPO,
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith('usage: gpu_check.py')
    assert '--only' in result.stdout and '--budget' in result.stdout
