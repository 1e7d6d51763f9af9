# Copyright (c) fasternet_mm contributors. Licensed under the MIT licence.
"""Folding a BatchNorm into the convolution before it: the deploy form of
every conv-then-BN pair in the backbone, the blocks and the neck.

Folding keeps the function (up to rounding) for a BN in eval mode; lower
precision, which changes the numbers, lives in :mod:`fasternet_mm.precision`.
"""
import torch
from mmcv.cnn import ConvModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .partial_conv import PartialConvPointwise


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: _BatchNorm) -> nn.Conv2d:
    """A conv with bias equal to ``bn(conv(x))`` for BN in eval mode.

    The folding is computed in fp32 and cast to the conv's dtype at the
    end, so that a half-precision model is not folded in 16 bits."""
    if not isinstance(bn, _BatchNorm) or not bn.track_running_stats:
        raise TypeError(f'Only BatchNorm with running statistics folds into '
                        f'a conv, got {type(bn).__name__}')
    scale = torch.rsqrt(bn.running_var.float() + bn.eps)
    if bn.affine:
        scale = scale * bn.weight.float()
    shift = -bn.running_mean.float() * scale
    if bn.affine:
        shift = shift + bn.bias.float()
    if conv.bias is not None:
        shift = shift + conv.bias.float() * scale
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
    fused.weight.copy_(conv.weight.float() * scale.view(-1, 1, 1, 1))
    fused.bias.copy_(shift)
    return fused


def fold_conv_module_norm(module: ConvModule) -> None:
    """Fold the BatchNorm of an mmcv ``ConvModule`` (conv, then norm) into
    its conv, in place: a plain conv, or the pointwise conv of a
    :class:`PartialConvPointwise`. Other modules are left as they are."""
    if not (module.with_norm and isinstance(module.norm, _BatchNorm)
            and module.order.index('conv') < module.order.index('norm')):
        return
    if isinstance(module.conv, PartialConvPointwise):
        module.conv.pointwise = fuse_conv_bn(module.conv.pointwise,
                                             module.norm)
    elif type(module.conv) is nn.Conv2d:
        module.conv = fuse_conv_bn(module.conv, module.norm)
    else:
        return
    setattr(module, module.norm_name, nn.Identity())
