"""Side-by-side timing of FasterNet implementations, all in one process.

Repetitions are interleaved (a, b, c, a, b, c, ...) so that a noisy machine
slows every model alike, and medians are reported. See tools/benchmark.py.
"""
import time
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn

from .checkpoint import convert_state_dict
from .models import FasterNet


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


def gemm_gflops(dtype: torch.dtype = torch.float32,
                size: int = 2048,
                repeats: int = 7,
                device: str = 'cpu') -> float:
    """This machine's matrix-multiply rate in GFLOP/s (2 n^3 per product)."""
    a = torch.rand(size, size, device=device).to(dtype)
    b = torch.rand(size, size, device=device).to(dtype)

    def product():
        a @ b
        if device != 'cpu':
            torch.cuda.synchronize()

    seconds = interleaved_medians({'gemm': product}, repeats, warmup=2)
    return 2 * size**3 / seconds['gemm'] / 1e9


def count_macs(model: nn.Module, image: torch.Tensor) -> int:
    """Multiply-adds of one forward (mmengine.analysis)."""
    analyzer = FlopAnalyzer(model, (image, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        return int(analyzer.total())


def relative_error(outputs: Sequence[torch.Tensor],
                   reference: Sequence[torch.Tensor]) -> float:
    """Largest |a - b| / max |b| over matching feature maps."""
    return max(
        ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()
        for a, b in zip(outputs, reference))


def timm_peer(arch: str) -> Tuple[nn.Module, FasterNet]:
    """timm's ``fasternet_{arch}`` and our backbone with the same weights
    and drop-path rate (ours without output norms, as timm has none)."""
    import timm
    rate = FasterNet.parse_arch(arch)['drop_path_rate']
    peer = timm.create_model(
        f'fasternet_{arch}', pretrained=False, drop_path_rate=rate).eval()
    ours = FasterNet(arch=arch, out_norm=False)
    ours.load_state_dict(convert_state_dict(peer.state_dict(), 'timm'))
    return peer, ours.eval()


def timm_features(peer: nn.Module) -> Callable:
    """Stage features, as mmseg/mmpretrain's TIMMBackbone would give."""
    return lambda x: peer.forward_intermediates(x, intermediates_only=True)


class BFloat16Backbone(nn.Module):
    """Runs a backbone under CPU bf16 autocast and hands fp32 features on,
    so that the heads (and mmcv's fp32-only NMS) stay in fp32."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor):
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            features = self.backbone(x)
        return tuple(f.float() for f in features)
