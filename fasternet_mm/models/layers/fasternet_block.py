# Copyright (c) fasternet_mm contributors. Licensed under the MIT licence.
"""The FasterNet block (Chen et al., CVPR 2023): PConv, then a pointwise
MLP, plus the residual. The backbone's stages and the CSP layers of the neck
are built from it.

Original code (MIT licence): github.com/JierunChen/FasterNet; written from
scratch for MMEngine.
"""
import torch
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...registry import MODELS
from ...typing_utils import ConfigType
from .bn_folding import fuse_conv_bn
from .partial_conv import PartialConv
from .reparam import DeployableMixin


@MODELS.register_module()
class FasterNetBlock(DeployableMixin, nn.Module):
    """PConv followed by a pointwise MLP, with a residual connection.

    ``x + drop_path(project(act(norm(expand(pconv(x))))))``, where ``expand``
    and ``project`` are bias-free 1x1 convs to ``mlp_ratio * C`` and back.
    ``switch_to_deploy()`` folds ``norm`` into ``expand``
    (:class:`DeployableMixin`).

    Args:
        channels (int): Number of input and output channels.
        n_div (int): PConv convolves ``channels // n_div`` channels.
            Defaults to 4.
        mlp_ratio (float): Hidden width of the MLP relative to ``channels``.
            Defaults to 2.
        drop_path_rate (float): Stochastic depth rate of this block: the
            probability of dropping its residual branch for a sample.
            Defaults to 0.
        norm_cfg (dict): Config of the norm layer inside the MLP. Defaults
            to ``dict(type='BN')``.
        act_cfg (dict): Config of the activation inside the MLP. Defaults
            to ``dict(type='ReLU', inplace=True)``.
        with_cp (bool): Use gradient checkpointing. Defaults to False.
    """

    def __init__(self,
                 channels: int,
                 n_div: int = 4,
                 mlp_ratio: float = 2.0,
                 drop_path_rate: float = 0.0,
                 norm_cfg: ConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='ReLU', inplace=True),
                 with_cp: bool = False) -> None:
        super().__init__()
        hidden_channels = int(channels * mlp_ratio)
        self.with_cp = with_cp
        self.partial_conv = PartialConv(channels, n_div)
        self.expand = nn.Conv2d(channels, hidden_channels, 1, bias=False)
        self.norm = build_norm_layer(norm_cfg, hidden_channels)[1]
        self.act = build_activation_layer(act_cfg)
        self.project = nn.Conv2d(hidden_channels, channels, 1, bias=False)
        self.drop_path_rate = drop_path_rate

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        x = self.partial_conv(x)
        return self.project(self.act(self.norm(self.expand(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            residual = cp.checkpoint(self._residual, x, use_reentrant=False)
        else:
            residual = self._residual(x)
        if self.training and self.drop_path_rate > 0:
            # Stochastic depth: drop the whole residual branch of a sample
            # with probability drop_path_rate, scale the kept ones up. One
            # fused multiply-add instead of separate scale, mask and add.
            keep = 1 - self.drop_path_rate
            mask = x.new_empty((x.shape[0], ) + (1, ) * (x.dim() - 1))
            return torch.addcmul(x, residual, mask.bernoulli_(keep).div_(keep))
        return x + residual

    def _switch_own_layers(self) -> None:
        """Fold the MLP's BatchNorm into the 1x1 conv before it."""
        if isinstance(self.norm, _BatchNorm):
            self.expand = fuse_conv_bn(self.expand, self.norm)
            self.norm = nn.Identity()
