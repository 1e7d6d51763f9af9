"""Measuring a model: its parameters, weight bytes and multiply-adds. The
tools, the benchmark and the tests all measure with these."""
from typing import Dict, Optional

import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn

from .model_utils import dummy_sample


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (BN affine included, buffers not)."""
    return sum(p.numel() for p in model.parameters())


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the state dict's tensors (parameters and buffers): what a
    file of the weights holds at least."""
    return sum(t.numel() * t.element_size()
               for t in model.state_dict().values())


def count_macs(model: nn.Module,
               image: torch.Tensor,
               data_samples: Optional[list] = None) -> int:
    """Multiply-adds of one forward of ``model`` on ``image``
    (``mmengine.analysis``): its plain forward, or with ``data_samples``
    the tensor mode (``model._forward``) of a detector or segmentor.
    Operators without a counting rule (RoIAlign, NMS) add nothing."""
    analyzer = FlopAnalyzer(_TensorMode(model.eval(), data_samples),
                            (image, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        return int(analyzer.total())


def count_complexity(model: nn.Module,
                     scope: str,
                     height: int,
                     width: int,
                     backbone_only: bool = False,
                     by_part: bool = False) -> Dict:
    """``flops`` (multiply-adds) and ``params`` of a detector or segmentor,
    or of its backbone, for one ``(1, 3, height, width)`` input. A full
    two-stage detector counts its backbone, neck, RPN and the RoI heads on
    the test-time proposals. ``by_part`` adds ``flops_by_part``: the FLOPs
    of each top-level part (backbone, neck, each head) that has any."""
    target = model.backbone if backbone_only else model
    samples = None if backbone_only else [dummy_sample(scope, height, width)]
    image = torch.rand(1, 3, height, width)
    result = dict(
        flops=count_macs(target, image, samples),
        params=count_parameters(target))
    if by_part and not backbone_only:
        analyzer = FlopAnalyzer(_TensorMode(target.eval(), samples),
                                (image, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        with torch.no_grad():
            flops = analyzer.by_module()
        result['flops_by_part'] = {
            name: flops[f'model.{name}']
            for name, _ in target.named_children()
            if flops.get(f'model.{name}', 0) > 0
        }
    return result


class _TensorMode(nn.Module):
    """Calls the plain forward (no data samples) or ``_forward`` with fixed
    data samples (whole model), so the tracer sees only tensors."""

    def __init__(self, model: nn.Module, data_samples=None) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs):
        if self.data_samples is None:
            return self.model(inputs)
        return self.model._forward(inputs, self.data_samples)
