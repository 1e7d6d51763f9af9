"""Deploy-time re-parameterisation: fold each BatchNorm that follows a
convolution into that convolution.

The result computes the same function in eval mode with fewer passes over
memory. ``fasternet_mm.switch_to_deploy(model)`` converts every FasterNet
inside a detector or segmentor; ``FasterNet.switch_to_deploy()`` one
backbone.
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


def switch_to_deploy(model: nn.Module) -> nn.Module:
    """Switch every submodule with a ``switch_to_deploy`` method (every
    FasterNet, wherever it sits in a detector or segmentor) to its deploy
    form, in place. Returns the model in eval mode; load weights first."""
    for module in list(model.modules()):
        if callable(getattr(module, 'switch_to_deploy', None)):
            module.switch_to_deploy()
    return model.eval()


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


def use_bf16_backbone(model: nn.Module) -> nn.Module:
    """Run ``model.backbone`` (a detector's or segmentor's) in bf16; the
    rest stays fp32. Returns the model."""
    if not isinstance(model.backbone, BFloat16Backbone):
        model.backbone = BFloat16Backbone(model.backbone)
    return model
