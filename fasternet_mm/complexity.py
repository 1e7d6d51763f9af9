"""Parameter and FLOP counts of a built detector or segmentor, without a
dataset: one forward pass of the model's tensor mode on a dummy image."""
from typing import Dict

import torch
from mmengine.analysis import FlopAnalyzer, get_model_complexity_info
from torch import nn


def dummy_sample(scope: str, height: int, width: int):
    """A DetDataSample (``scope='mmdet'``) or SegDataSample for an unpadded,
    unscaled ``height`` x ``width`` image, for predict or tensor mode."""
    meta = dict(
        img_shape=(height, width),
        ori_shape=(height, width),
        pad_shape=(height, width),
        batch_input_shape=(height, width),
        scale_factor=(1.0, 1.0))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        return DetDataSample(metainfo=meta)
    from mmseg.structures import SegDataSample
    return SegDataSample(metainfo=meta)


def count_complexity(model: nn.Module,
                     scope: str,
                     height: int,
                     width: int,
                     backbone_only: bool = False,
                     by_part: bool = False) -> Dict:
    """``mmengine.analysis`` counts for one ``(1, 3, height, width)`` input.

    FLOPs are multiply-adds. For a full model the count covers its tensor
    mode (``model._forward``): for two-stage detectors the backbone, neck,
    RPN and the RoI heads on the test-time proposals. ``by_part`` adds
    ``flops_by_part``: the FLOPs of each top-level part (backbone, neck,
    each head) that has any, from one more trace.
    """
    model = model.eval()
    image = torch.rand(1, 3, height, width)
    target = model.backbone if backbone_only else model
    samples = None if backbone_only else [dummy_sample(scope, height, width)]
    with torch.no_grad():
        result = get_model_complexity_info(
            _TensorMode(target, samples),
            inputs=(image, ),
            show_table=False,
            show_arch=False)
        if by_part and not backbone_only:
            analyzer = FlopAnalyzer(_TensorMode(target, samples), (image, ))
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            flops = analyzer.by_module()
            result['flops_by_part'] = {
                name: flops[f'model.{name}']
                for name, _ in target.named_children()
                if flops.get(f'model.{name}', 0) > 0
            }
    result['params'] = sum(p.numel() for p in target.parameters())
    return result


class _TensorMode(nn.Module):
    """Calls the plain forward (backbone) or ``_forward`` with fixed data
    samples (whole model), so the tracer sees only tensors."""

    def __init__(self, model: nn.Module, data_samples=None) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs):
        if self.data_samples is None:
            return self.model(inputs)
        return self.model._forward(inputs, self.data_samples)
