"""One check of a GPU machine: set-up, GPU tests and GPU benchmark.

Run by ``make gpu-check PY=python3`` with a Python that already has torch
with CUDA.  In order, each under a time limit inside ``--budget``:

1. ``tools/setup_env.sh`` with ``VENV=`` (this Python as it is): installs the
   OpenMMLab stack and builds mmcv for the visible GPU unless a working one
   is installed or cached (``FASTERNET_MM_WHEELHOUSE`` for an offline one);
2. ``pytest tests/test_gpu.py -rs``;
3. ``tools/benchmark.py --gpu-only``, which writes ``benchmark_gpu.json``.

Writes ``OUT/gpu_check.json``: device, torch/CUDA/nvcc versions, mmcv build
minutes (or ``'cached'``), test counts and failures, which step was cut by
its limit, and the benchmark's JSON.  Exits 0 only if every step passed.
Logs of each step go to ``OUT/<step>.log``.

This runs before mmengine is installed, so it needs only the standard
library and torch, and reports with plain prints.
"""
import argparse
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BENCH_JSON = 'benchmark_gpu.json'
NO_TIME = 'no time left in the budget'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/gpu_check')
    parser.add_argument('--tests', default='tests/test_gpu.py',
                        help='the pytest file or node ids of the GPU tests')
    parser.add_argument(
        '--budget', type=float, default=480,
        help='seconds for everything (default 8 min); later steps get what '
        'earlier ones left')
    parser.add_argument(
        '--test-limit', type=float, default=180,
        help='most seconds for the GPU tests')
    parser.add_argument(
        '--bench-limit', type=float, default=150,
        help='most seconds for the GPU benchmark; the tests leave it at '
        'least --bench-min')
    parser.add_argument('--bench-min', type=float, default=60)
    return parser.parse_args(argv)


def cuda_or_exit():
    """The torch module, or exit with one line where CUDA is absent."""
    try:
        import torch
    except ImportError as error:
        sys.exit(f'gpu_check.py: error: {sys.executable} cannot import torch '
                 f'({error}); run it with a Python that has torch with CUDA '
                 '(make gpu-check PY=...)')
    if not torch.cuda.is_available():
        built = torch.version.cuda or 'none (a CPU-only build)'
        sys.exit(f'gpu_check.py: error: CUDA is not available to '
                 f'{sys.executable} (torch {torch.__version__}, built with '
                 f'CUDA {built}); run make gpu-check on a GPU machine')
    return torch


def nvcc_version():
    """nvcc's CUDA release, from the toolkit torch builds extensions with."""
    from torch.utils.cpp_extension import CUDA_HOME
    if not CUDA_HOME:
        return None
    try:
        text = subprocess.run([osp.join(CUDA_HOME, 'bin', 'nvcc'),
                               '--version'],
                              capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'release ([\d.]+)', text)
    return match.group(1) if match else None


def run_step(cmd, limit, log_path, env=None):
    """Run ``cmd`` in ROOT, echoing and logging its output, killing its
    whole process group after ``limit`` seconds."""
    started = time.monotonic()
    result = dict(command=' '.join(cmd), limit_s=round(limit, 1),
                  log=osp.relpath(log_path, ROOT))
    with open(log_path, 'w') as log:
        process = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)

        def copy():
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                log.write(line)

        reader = threading.Thread(target=copy, daemon=True)
        reader.start()
        try:
            process.wait(timeout=limit)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        reader.join(timeout=10)
    result.update(returncode=process.returncode, timed_out=timed_out,
                  seconds=round(time.monotonic() - started, 1))
    return result


def skipped_step(reason, cut=False):
    """A step that did not run; ``cut`` when the budget left it no time."""
    return dict(returncode=None, timed_out=cut, seconds=0.0, not_run=reason)


def mmcv_build(setup_log):
    """Build minutes from setup_env.sh's log, or 'cached' when it built
    nothing; also the architectures it built for, if it said so."""
    minutes, arch = 'cached', None
    for line in setup_log.splitlines():
        built = re.match(r'\[setup\] built mmcv .* in ([\d.]+) min', line)
        if built:
            minutes = float(built.group(1))
        chosen = re.match(r'\[setup\] building for TORCH_CUDA_ARCH_LIST=(\S+)',
                          line)
        if chosen:
            arch = chosen.group(1)
    return minutes, arch


def junit_counts(path):
    """Counts and failing test ids from pytest's JUnit XML."""
    counts = dict(passed=0, failed=0, errors=0, skipped=0)
    failures, skips = [], []
    for case in ET.parse(path).getroot().iter('testcase'):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find('failure') is not None:
            counts['failed'] += 1
            failures.append(name)
        elif case.find('error') is not None:
            counts['errors'] += 1
            failures.append(name)
        elif case.find('skipped') is not None:
            counts['skipped'] += 1
            skips.append(f"{name}: {case.find('skipped').get('message', '')}")
        else:
            counts['passed'] += 1
    return dict(counts, failures=failures, skips=skips)


def verbose_log_counts(text):
    """The same from ``pytest -v`` output, for a run cut before it wrote its
    XML: only the tests that finished."""
    counts = dict(passed=0, failed=0, errors=0, skipped=0)
    failures = []
    for test, outcome in re.findall(
            r'^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED)', text, re.M):
        key = dict(PASSED='passed', FAILED='failed', ERROR='errors',
                   SKIPPED='skipped')[outcome]
        counts[key] += 1
        if outcome in ('FAILED', 'ERROR'):
            failures.append(test)
    return dict(counts, failures=failures, skips=[])


def step_passed(step):
    return step.get('returncode') == 0 and not step.get('timed_out')


def write_json(path, report):
    partial = path + '.partial'
    with open(partial, 'w') as f:
        json.dump(report, f, indent=2)
    os.replace(partial, path)


def main(argv=None):
    args = parse_args(argv)
    torch = cuda_or_exit()
    deadline = time.monotonic() + args.budget
    out = osp.join(ROOT, args.out)
    os.makedirs(out, exist_ok=True)
    # Nothing from an earlier run may pass for this one's.
    for name in (BENCH_JSON, 'pytest.xml', 'gpu_check.json'):
        if osp.exists(osp.join(out, name)):
            os.remove(osp.join(out, name))

    report = dict(
        device=torch.cuda.get_device_name(0),
        device_count=torch.cuda.device_count(),
        compute_capability='%d.%d' % torch.cuda.get_device_capability(0),
        python=sys.version.split()[0], executable=sys.executable,
        torch=torch.__version__, torch_cuda=torch.version.cuda,
        nvcc=nvcc_version(), budget_s=args.budget, steps={})
    steps = report['steps']

    env = dict(os.environ, VENV='', PYTHON=sys.executable,
               PYTHONUNBUFFERED='1')
    setup_log = osp.join(out, 'setup.log')
    steps['setup'] = run_step(['bash', 'tools/setup_env.sh'],
                              deadline - time.monotonic(), setup_log, env)
    with open(setup_log) as f:
        minutes, arch = mmcv_build(f.read())
    report.update(mmcv_build_minutes=minutes, torch_cuda_arch_list=arch)

    if not step_passed(steps['setup']):
        steps['tests'] = skipped_step('set-up failed or was cut')
        steps['benchmark'] = skipped_step('set-up failed or was cut')
    else:
        left = deadline - time.monotonic()
        limit = min(args.test_limit, left - args.bench_min)
        xml = osp.join(out, 'pytest.xml')
        if not osp.exists(osp.join(ROOT, args.tests.split('::')[0])):
            steps['tests'] = skipped_step(f'{args.tests} not found')
        elif limit < 10:
            steps['tests'] = skipped_step(NO_TIME, cut=True)
        else:
            steps['tests'] = run_step(
                [sys.executable, '-m', 'pytest', args.tests, '-rs', '-v',
                 '-p', 'no:cacheprovider', f'--junitxml={xml}'],
                limit, osp.join(out, 'tests.log'), env)
            if osp.exists(xml):
                steps['tests'].update(junit_counts(xml))
            else:
                with open(osp.join(out, 'tests.log')) as f:
                    steps['tests'].update(verbose_log_counts(f.read()))

        limit = min(args.bench_limit, deadline - time.monotonic())
        if limit < 10:
            steps['benchmark'] = skipped_step(NO_TIME, cut=True)
        else:
            steps['benchmark'] = run_step(
                [sys.executable, 'tools/benchmark.py', '--gpu-only', '--out',
                 args.out], limit, osp.join(out, 'benchmark.log'), env)
        bench_json = osp.join(out, BENCH_JSON)
        if osp.exists(bench_json):
            with open(bench_json) as f:
                report['benchmark'] = json.load(f)

    report['cut'] = [name for name, step in steps.items()
                     if step.get('timed_out')]
    report['passed'] = (all(step_passed(step) for step in steps.values())
                        and 'benchmark' in report)
    write_json(osp.join(out, 'gpu_check.json'), report)

    tests = steps['tests']
    counts = ', '.join(f'{tests.get(key, 0)} {key}'
                       for key in ('passed', 'failed', 'errors', 'skipped'))
    print(f"\ngpu_check: {report['device']}, torch {report['torch']}, CUDA "
          f"{report['torch_cuda']}, nvcc {report['nvcc']}; mmcv build: "
          f"{minutes}{' min' if minutes != 'cached' else ''}; tests: "
          f"{counts}; cut: {', '.join(report['cut']) or 'none'}; "
          f"{'PASSED' if report['passed'] else 'FAILED'}")
    for failure in tests.get('failures', []):
        print(f'  failed: {failure}')
    print(f'wrote {args.out}/gpu_check.json')
    return 0 if report['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())
