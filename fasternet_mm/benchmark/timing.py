"""How the benchmark times: repetitions interleaved (a, b, c, a, b, c,
...) so that a noisy machine slows every model alike, and medians
reported; the machine's GEMM rate, the activation memory of a training
step, the kernels that take the most device time, and the report written
whole or not at all. The CPU's features are :mod:`fasternet_mm.cpu`'s."""
import json
import os
import os.path as osp
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch


def dump_report(report: dict, path: str) -> None:
    """Write ``report`` as JSON to ``path`` whole or not at all: into a
    temporary file beside it, then renamed over it, so that a run killed
    mid-write leaves the previous version, not half a file."""
    handle, partial = tempfile.mkstemp(
        dir=osp.dirname(osp.abspath(path)),
        prefix=osp.basename(path) + '.',
        suffix='.partial')
    try:
        with os.fdopen(handle, 'w') as f:
            json.dump(report, f, indent=2)
        os.replace(partial, path)
    except BaseException:
        os.remove(partial)
        raise


def interleaved_medians(cases: Dict[str, Callable[[], object]],
                        repeats: int,
                        warmup: int = 1) -> Dict[str, float]:
    """Median seconds per call of each case, timed round-robin with the
    order rotated every round."""
    for _ in range(warmup):
        for run in cases.values():
            run()
    times: Dict[str, List[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_index in range(repeats):
        # Rotate the order each round: the first case after another one's
        # backward pass runs measurably slower (about 5% here).
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def autocast_run(run: Callable[[], object],
                 dtype: torch.dtype = torch.bfloat16,
                 device: str = 'cpu') -> Callable[[], object]:
    """``run`` under autocast to ``dtype``; on CUDA it also waits for the
    GPU, so that timing it times the work."""

    def wrapped():
        with torch.autocast(device, dtype=dtype):
            outputs = run()
        if device == 'cuda':
            torch.cuda.synchronize()
        return outputs

    return wrapped


def gemm_gflops(dtype: torch.dtype = torch.float32,
                sizes: Sequence[int] = (2048, 3072, 4096),
                repeats: int = 5,
                device: str = 'cpu') -> float:
    """This machine's matrix-multiply rate in GFLOP/s (2 n^3 per product):
    the best median over a few square sizes, since small products
    understate the peak."""

    def rate(size):
        a = torch.rand(size, size, device=device).to(dtype)
        b = torch.rand(size, size, device=device).to(dtype)

        def product():
            a @ b
            if device != 'cpu':
                torch.cuda.synchronize()

        seconds = interleaved_medians({'gemm': product}, repeats, warmup=1)
        return 2 * size**3 / seconds['gemm'] / 1e9

    return max(rate(size) for size in sizes)


# 1x1 convs, channels-last, (in channels, out channels, side): GEMMs of
# 4096 x 512-1024 x 1024 in oneDNN, the library the deploy form's convs run
# in; torch.mm runs torch's BLAS, whose speed differs by CPU vendor. The
# roofline takes the better of the two.
ROOFLINE_CONVS = ((512, 1024, 64), (1024, 1024, 64))

# fp32 FLOPs per cycle and core of one FMA unit: 2 (multiply and add) x
# the lanes of the vector width oneDNN runs.
FMA_FLOPS_PER_CYCLE = dict(avx512=32, avx2=16)


def conv_gflops(shapes: Sequence[Sequence[int]] = ROOFLINE_CONVS,
                repeats: int = 5) -> float:
    """This machine's fp32 rate in GFLOP/s of oneDNN's convolution (through
    torch) at shapes that saturate it: the best median over ``shapes``
    (1x1 convs, batch 1, channels-last, given as (in, out, side))."""

    def rate(in_channels, out_channels, side):
        x = torch.rand(1, in_channels, side, side).contiguous(
            memory_format=torch.channels_last)
        weight = torch.rand(out_channels, in_channels, 1, 1).contiguous(
            memory_format=torch.channels_last)
        with torch.no_grad():
            seconds = interleaved_medians(
                {'conv': lambda: torch.conv2d(x, weight)}, repeats)
        return 2 * in_channels * out_channels * side**2 / seconds['conv'] / 1e9

    return max(rate(*shape) for shape in shapes)


def nominal_peak_gflops(isa: str,
                        threads: int,
                        cpuinfo: str = '/proc/cpuinfo',
                        fma_units: int = 2) -> Optional[float]:
    """The fp32 FMA peak of ``threads`` cores at the clock
    ``cpuinfo`` reports (its first ``cpu MHz``), assuming ``fma_units`` FMA
    units per core at the vector width of ``isa`` (an
    :func:`fasternet_mm.cpu_isa.onednn_isa` class): a reference, since
    clocks turbo above the reported one and some CPUs have one FMA unit.
    None where the clock or the ISA's width is unknown."""
    if isa not in FMA_FLOPS_PER_CYCLE or not osp.exists(cpuinfo):
        return None
    with open(cpuinfo) as f:
        for line in f:
            if line.startswith('cpu MHz'):
                mhz = float(line.split(':', 1)[1])
                return (threads * mhz * 1e6 * fma_units *
                        FMA_FLOPS_PER_CYCLE[isa] / 1e9)
    return None


def saved_activation_bytes(run: Callable[[], object]) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of
    ``run()`` (unique storages): the activation memory of a training step,
    which is what differs between two implementations of one network."""
    storages: Dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(storages.values())


def top_kernels(run: Callable[[], object],
                device: str,
                count: int = 12) -> Dict[str, float]:
    """The ``count`` kernels that take the most device time in one call of
    ``run``, in ms: where a deploy form loses to its peer."""
    from torch.profiler import ProfilerActivity, profile
    with torch.no_grad():
        run()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            run()
    totals: Dict[str, float] = {}
    for event in prof.events():
        if event.device_type.name == device.upper():
            totals[event.name] = totals.get(event.name, 0) + \
                event.device_time_total / 1e3
    return dict(sorted(totals.items(), key=lambda kv: -kv[1])[:count])
