"""The deploy form: the same function, computed faster.

``fasternet_mm.switch_to_deploy(model)`` folds each BatchNorm that follows a
convolution into that convolution, in every FasterNet inside a detector or
segmentor (``FasterNet.switch_to_deploy()`` does one backbone), and swaps
mmcv's RoIAlign for the equal, faster :class:`GatherRoIAlign`. Lower
precision, which changes the numbers, lives in :mod:`fasternet_mm.precision`.
"""
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: _BatchNorm) -> nn.Conv2d:
    """A conv with bias equal to ``bn(conv(x))`` for BN in eval mode."""
    if not isinstance(bn, _BatchNorm) or not bn.track_running_stats:
        raise TypeError(f'Only BatchNorm with running statistics folds into '
                        f'a conv, got {type(bn).__name__}')
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.affine:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.affine:
        shift = shift + bn.bias
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode)
    fused = fused.to(device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    fused.bias.copy_(shift)
    return fused


def _swap_roi_align(model: nn.Module) -> None:
    """Put a GatherRoIAlign in place of every average-pooling
    ``mmcv.ops.RoIAlign``."""
    try:
        from mmcv.ops import RoIAlign
    except ImportError:  # mmcv without its compiled ops: nothing to swap
        return
    from .ops import GatherRoIAlign
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (type(child) is RoIAlign and child.pool_mode == 'avg'
                    and not child.use_torchvision):
                setattr(
                    parent, name,
                    GatherRoIAlign(child.output_size, child.spatial_scale,
                                   child.sampling_ratio, child.pool_mode,
                                   child.aligned))


def switch_to_deploy(model: nn.Module) -> nn.Module:
    """Switch a backbone, detector or segmentor to its deploy form, in place:
    every submodule with a ``switch_to_deploy`` method (every FasterNet,
    wherever it sits) folds its BNs, and every average-pooling
    ``mmcv.ops.RoIAlign`` becomes a :class:`GatherRoIAlign` (same numbers,
    5-15x faster on CPU). Returns the model in eval mode; load weights
    first."""
    for module in list(model.modules()):
        if callable(getattr(module, 'switch_to_deploy', None)):
            module.switch_to_deploy()
    _swap_roi_align(model)
    return model.eval()
