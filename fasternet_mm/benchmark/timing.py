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
from typing import Callable, Dict, List, Sequence

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
