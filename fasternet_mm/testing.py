"""Fixtures of the tests and the benchmark: BatchNorms that show a wrong
mapping, timm's FasterNet with our weights beside it, and how far two sets
of outputs differ."""
from typing import Callable, Sequence, Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .checkpoint import convert_state_dict
from .models import FasterNet


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm seeded non-trivial statistics and affine
    parameters, in place, and return the model in eval mode (so that the
    statistics are used): with the defaults (mean 0, variance 1, weight 1,
    bias 0) a BN layer is nearly the identity, and copying its values to
    the wrong place, or not at all, would not show in the outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator))
                module.running_var.copy_(
                    torch.rand(n, generator=generator) + .5)
                module.weight.copy_(torch.randn(n, generator=generator))
                module.bias.copy_(torch.randn(n, generator=generator))
    return model.eval()


def timm_peer(arch: str) -> Tuple[nn.Module, FasterNet]:
    """timm's ``fasternet_{arch}`` and our backbone with the same weights
    and drop-path rate (ours without output norms, as timm has none). The
    BatchNorms get non-default statistics first, so that the outputs agree
    only if every one of them was mapped to its counterpart."""
    import timm
    rate = FasterNet.parse_arch(arch)['drop_path_rate']
    peer = timm.create_model(
        f'fasternet_{arch}', pretrained=False, drop_path_rate=rate).eval()
    randomize_norms(peer)
    ours = FasterNet(arch=arch, out_norm=False)
    ours.load_state_dict(convert_state_dict(peer.state_dict(), 'timm'))
    return peer, ours.eval()


def timm_features(peer: nn.Module) -> Callable:
    """Stage features, as mmseg/mmpretrain's TIMMBackbone would give."""
    return lambda x: peer.forward_intermediates(x, intermediates_only=True)


def relative_error(outputs: Sequence[torch.Tensor],
                   reference: Sequence[torch.Tensor]) -> float:
    """Largest ``|a - b| / max |b|`` over matching tensors, in float32."""
    return max(
        float((a.float() - b.float()).abs().max() /
              b.float().abs().max().clamp(min=1e-12))
        for a, b in zip(outputs, reference))
