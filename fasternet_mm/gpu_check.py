"""One check of a GPU machine: set-up, GPU benchmark and GPU tests.

Run by ``make gpu-check PY=python3`` (``tools/setup/gpu_check.py``) with a
Python that already has torch with CUDA, from a source checkout.  Its
steps, in this order, each under its own time limit:

1. ``setup`` (``--setup-limit``, 8 min): ``tools/setup/setup_env.sh`` with
   ``VENV=`` (this Python as it is): installs the OpenMMLab stack and builds
   mmcv for the visible GPU unless a working one is installed or cached
   (``FASTERNET_MM_WHEELHOUSE`` for an offline one);
2. ``bench`` (``--bench-limit``, 2.5 min): ``tools/benchmark.py
   --gpu-only``, which rewrites ``benchmark_gpu.json`` after each of its
   sections, so a cut run keeps the figures it finished.  It runs before
   the tests: its figures are what a GPU is needed for most;
3. ``tests`` (``--test-limit``, 4 min): ``pytest tests/test_gpu.py -rs``.

Without ``--budget`` each step gets its whole limit: about 15 minutes at
most in all.  With ``--budget SECONDS`` a step gets its limit or, when
less, what the budget has left once each later step is kept its minimum
(``--bench-min``, ``--test-min``).

``--only`` runs some of the steps; the others can run later on the same
machine (the set-up leaves mmcv installed), e.g. where a job scheduler
limits each job's time:

    python3 tools/setup/gpu_check.py --only setup,bench
    python3 tools/setup/gpu_check.py --only tests

On a fresh machine the second run is ``--only setup,tests``; where the
first ran with ``FASTERNET_MM_WHEEL_CACHE=work_dirs/wheels``, the mmcv wheel
it built (stripped of debug info) is in the checkout, and with that directory
brought along the set-up installs it without rebuilding.

A run keeps the steps that its ``--only`` leaves out from the
``gpu_check.json`` a previous run left in ``--out`` for the same Python
and device, marked with ``from_run``, so that after both runs that file
tells all three.

Writes ``OUT/gpu_check.json`` after each step: device, torch/CUDA/nvcc
versions, mmcv build minutes (or ``'cached'``), test counts and failures,
which step was cut by its limit, and the benchmark's JSON.  Exits 0 only if
every step it holds passed.  Logs of each step go to ``OUT/<step>.log``.

This runs before mmengine and mmcv are installed: it needs only the
standard library and torch, reports with plain prints, and the tool loads
this file by its path, since ``import fasternet_mm`` needs them.
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

# The source checkout this file is in: the steps run its tools and tests.
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BENCH_JSON = 'benchmark_gpu.json'
REPORT_JSON = 'gpu_check.json'
NO_TIME = 'no time left in the budget'
STEPS = ('setup', 'bench', 'tests')
# What each step leaves in OUT: removed before it runs again.
OUTPUTS = dict(setup=('setup.log', ), bench=(BENCH_JSON, 'benchmark.log'),
               tests=('pytest.xml', 'tests.log'))
# The report's entries that come from one step, besides its own.
STEP_ENTRIES = dict(setup=('mmcv_build_minutes', 'torch_cuda_arch_list'),
                    bench=('benchmark', ), tests=())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='gpu_check.py',
        description=__doc__.split('\n')[0],
        epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='work_dirs/gpu_check')
    parser.add_argument('--tests', default='tests/test_gpu.py',
                        help='the pytest file or node ids of the GPU tests')
    parser.add_argument(
        '--only', default=','.join(STEPS), type=steps_list,
        help=f'the steps to run, comma-separated, of {",".join(STEPS)} '
        '(default: all)')
    parser.add_argument(
        '--budget', type=float,
        help='seconds for the whole run (default: no limit but the '
        "steps' own)")
    parser.add_argument(
        '--setup-limit', type=float, default=480,
        help='most seconds for the set-up (default 8 min: the mmcv build '
        'takes 6-7 on 16 cores)')
    parser.add_argument(
        '--bench-limit', type=float, default=150,
        help='most seconds for the GPU benchmark')
    parser.add_argument(
        '--test-limit', type=float, default=240,
        help='most seconds for the GPU tests')
    parser.add_argument(
        '--bench-min', type=float, default=60,
        help='seconds of the budget the set-up leaves the benchmark')
    parser.add_argument(
        '--test-min', type=float, default=60,
        help='seconds of the budget earlier steps leave the tests')
    args = parser.parse_args(argv)
    for name in ('budget', 'setup_limit', 'bench_limit', 'test_limit'):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive "
                         f'number of seconds, got {value:g}')
    return args


def steps_list(text):
    """``--only``'s steps in the order they run."""
    names = [name.strip() for name in text.split(',') if name.strip()]
    unknown = [name for name in names if name not in STEPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f'{", ".join(map(repr, unknown)) or "nothing"} in {text!r} is '
            f'not a step; the steps are {", ".join(STEPS)}')
    return [name for name in STEPS if name in names]


def step_limit(step, args, left):
    """Seconds ``step`` may run with ``left`` seconds of the budget: its
    own limit, less what the later steps of ``--only`` are kept."""
    limits = dict(setup=args.setup_limit, bench=args.bench_limit,
                  tests=args.test_limit)
    minimums = dict(setup=0, bench=args.bench_min, tests=args.test_min)
    later = args.only[args.only.index(step) + 1:]
    return min(limits[step], left - sum(minimums[name] for name in later))


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


def earlier_report(path, report):
    """The report a previous run left at ``path`` for the same Python and
    device, or None."""
    if not osp.exists(path):
        return None
    try:
        with open(path) as f:
            earlier = json.load(f)
    except (OSError, ValueError):
        return None
    same = all(earlier.get(key) == report[key]
               for key in ('executable', 'device', 'torch'))
    return earlier if same else None


def summarize(report):
    """Sets which steps were cut and whether the report passed."""
    steps = report['steps']
    report['cut'] = [name for name, step in steps.items()
                     if step.get('timed_out')]
    report['passed'] = (
        report['finished'] and bool(steps)
        and all(step_passed(step) for step in steps.values())
        and ('bench' not in steps or 'benchmark' in report))


def setup_step(args, out, env, limit, report):
    log = osp.join(out, 'setup.log')
    step = run_step(['bash', 'tools/setup/setup_env.sh'], limit, log, env)
    with open(log) as f:
        minutes, arch = mmcv_build(f.read())
    report.update(mmcv_build_minutes=minutes, torch_cuda_arch_list=arch)
    return step


def bench_step(args, out, env, limit, report):
    step = run_step(
        [sys.executable, 'tools/benchmark.py', '--gpu-only', '--out',
         args.out], limit, osp.join(out, 'benchmark.log'), env)
    bench_json = osp.join(out, BENCH_JSON)
    if osp.exists(bench_json):  # also from a cut run: its finished parts
        with open(bench_json) as f:
            report['benchmark'] = json.load(f)
    return step


def tests_step(args, out, env, limit, report):
    if not osp.exists(osp.join(ROOT, args.tests.split('::')[0])):
        return skipped_step(f'{args.tests} not found')
    xml = osp.join(out, 'pytest.xml')
    step = run_step(
        [sys.executable, '-m', 'pytest', args.tests, '-rs', '-v',
         '-p', 'no:cacheprovider', f'--junitxml={xml}'],
        limit, osp.join(out, 'tests.log'), env)
    if osp.exists(xml):
        step.update(junit_counts(xml))
    else:
        with open(osp.join(out, 'tests.log')) as f:
            step.update(verbose_log_counts(f.read()))
    return step


RUNNERS = dict(setup=setup_step, bench=bench_step, tests=tests_step)


def main(argv=None):
    args = parse_args(argv)
    torch = cuda_or_exit()
    started = time.monotonic()
    deadline = started + (args.budget if args.budget is not None
                          else float('inf'))
    out = osp.join(ROOT, args.out)
    os.makedirs(out, exist_ok=True)
    report_path = osp.join(out, REPORT_JSON)

    report = dict(
        device=torch.cuda.get_device_name(0),
        device_count=torch.cuda.device_count(),
        compute_capability='%d.%d' % torch.cuda.get_device_capability(0),
        python=sys.version.split()[0], executable=sys.executable,
        torch=torch.__version__, torch_cuda=torch.version.cuda,
        nvcc=nvcc_version(), run=time.strftime('%Y-%m-%dT%H:%M:%S'),
        only=args.only, budget_s=args.budget, steps={}, finished=False)
    steps = report['steps']
    # Steps this run does not repeat come from the previous run, marked so;
    # nothing a step left may pass for this run's when it runs again.
    earlier = earlier_report(report_path, report)
    for name in STEPS:
        if name in args.only:
            for output in OUTPUTS[name]:
                if osp.exists(osp.join(out, output)):
                    os.remove(osp.join(out, output))
        elif earlier and name in earlier.get('steps', {}):
            steps[name] = dict(earlier['steps'][name],
                               from_run=earlier['steps'][name].get(
                                   'from_run', earlier.get('run')))
            for key in STEP_ENTRIES[name]:
                if key in earlier:
                    report[key] = earlier[key]
    if osp.exists(report_path):
        os.remove(report_path)

    env = dict(os.environ, VENV='', PYTHON=sys.executable,
               PYTHONUNBUFFERED='1')
    for name in args.only:
        if name != 'setup' and 'setup' in args.only and not step_passed(
                steps['setup']):
            steps[name] = skipped_step('set-up failed or was cut')
            continue
        limit = step_limit(name, args, deadline - time.monotonic())
        if limit < 10:
            steps[name] = skipped_step(NO_TIME, cut=True)
            continue
        steps[name] = RUNNERS[name](args, out, env, limit, report)
        summarize(report)
        write_json(report_path, report)
    report['finished'] = True
    report['steps'] = steps = {name: steps[name]
                               for name in STEPS if name in steps}
    report['not_run'] = [name for name in STEPS if name not in steps]
    summarize(report)
    write_json(report_path, report)

    tests = steps.get('tests', {})
    counts = ', '.join(f'{tests.get(key, 0)} {key}'
                       for key in ('passed', 'failed', 'errors', 'skipped'))
    minutes = report.get('mmcv_build_minutes', 'not run')
    bench = report.get('benchmark', {})
    print(f"\ngpu_check: {report['device']}, torch {report['torch']}, CUDA "
          f"{report['torch_cuda']}, nvcc {report['nvcc']}; mmcv build: "
          f"{minutes}{' min' if isinstance(minutes, float) else ''}; "
          f"benchmark: {', '.join(bench.get('finished', [])) or 'none'}; "
          f"tests: {counts}; cut: {', '.join(report['cut']) or 'none'}; "
          f"{'PASSED' if report['passed'] else 'FAILED'}")
    for name, step in steps.items():
        if 'from_run' in step:
            print(f"  {name}: from the run of {step['from_run']}")
    for failure in tests.get('failures', []):
        print(f'  failed: {failure}')
    if report['not_run']:
        print(f"  not run: {', '.join(report['not_run'])} (--only)")
    print(f'wrote {args.out}/{REPORT_JSON}')
    return 0 if report['passed'] else 1
