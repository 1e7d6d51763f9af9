# Copyright (c) fasternet_mm contributors. Licensed under the MIT licence.
"""A Cross Stage Partial layer whose bottlenecks are FasterNet blocks.

The CSP layout follows CSPNet (Wang et al., CVPRW 2020) as mmdet's
``CSPLayer`` uses it; the bottlenecks are :class:`FasterNetBlock`, as in the
"C2f_Faster"-style blocks that public YOLO ports pair with PConv. Written
from scratch for this package.
"""
from typing import Dict, Optional

import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import nn

from ...registry import MODELS
from .bn_folding import fold_conv_module_norm
from .fasternet_block import FasterNetBlock


class DeployableMixin:
    """``switch_to_deploy()`` for the neck modules here: fold every
    BatchNorm that follows a conv in a ``ConvModule`` or a
    :class:`FasterNetBlock` into that conv. A folded module refuses to
    train."""

    deploy = False

    def switch_to_deploy(self) -> None:
        if self.deploy:
            return
        for module in list(self.modules()):
            if isinstance(module, ConvModule):
                fold_conv_module_norm(module)
            elif isinstance(module, FasterNetBlock):
                module.switch_to_deploy()
        for module in self.modules():
            if isinstance(module, DeployableMixin):
                module.deploy = True
        self.eval()

    def train(self, mode: bool = True):
        if mode and self.deploy:
            raise RuntimeError(
                f'This {type(self).__name__} was switched to its deploy form '
                f'(BN folded into convs) and cannot train; build a new one '
                f'to train')
        return super().train(mode)


@MODELS.register_module()
class FasterNetCSPLayer(DeployableMixin, BaseModule):
    """Cross Stage Partial layer with FasterNet blocks as its bottlenecks.

    Two 1x1 convs split the input into a main and a short path of
    ``int(out_channels * expand_ratio)`` channels each. The main path runs
    through ``num_blocks`` :class:`FasterNetBlock` (PConv, then a pointwise
    MLP, plus the residual); a 1x1 conv fuses both paths into
    ``out_channels``. PConv keeps stride 1 and its channel count, so the
    channel changes all happen in the 1x1 convs.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expand_ratio (float): Width of each path relative to
            ``out_channels``. Defaults to 0.5.
        num_blocks (int): Number of FasterNet blocks. Defaults to 1.
        n_div (int): PConv convolves ``channels // n_div`` of each block's
            channels. Defaults to 4.
        mlp_ratio (float): Hidden width of each block's MLP. Defaults to 2.
        drop_path_rate (float): Stochastic depth rate of every block.
            Defaults to 0.
        conv_cfg (dict, optional): Config of the 1x1 convs. Defaults to
            None (``nn.Conv2d``).
        norm_cfg (dict): Config of every norm layer. Defaults to
            ``dict(type='BN', momentum=0.03, eps=0.001)``.
        act_cfg (dict): Config of every activation, in the convs and the
            blocks' MLPs. Defaults to ``dict(type='SiLU')``.
        with_cp (bool): Gradient checkpointing in the blocks. Defaults to
            False.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None.

    Example:
        >>> import torch
        >>> layer = FasterNetCSPLayer(64, 96, num_blocks=2).eval()
        >>> tuple(layer(torch.rand(1, 64, 13, 17)).shape)
        (1, 96, 13, 17)
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expand_ratio: float = 0.5,
                 num_blocks: int = 1,
                 n_div: int = 4,
                 mlp_ratio: float = 2.0,
                 drop_path_rate: float = 0.0,
                 conv_cfg: Optional[Dict] = None,
                 norm_cfg: Dict = dict(type='BN', momentum=0.03, eps=0.001),
                 act_cfg: Dict = dict(type='SiLU'),
                 with_cp: bool = False,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        mid_channels = int(out_channels * expand_ratio)
        if mid_channels // n_div < 1:
            raise ValueError(
                f'FasterNetCSPLayer needs int(out_channels * expand_ratio) '
                f'// n_div >= 1 for PConv, got out_channels={out_channels}, '
                f'expand_ratio={expand_ratio} and n_div={n_div}')
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(
                f'num_blocks must be an int >= 1, got {num_blocks!r}')
        conv_args = dict(
            conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.main_conv = ConvModule(in_channels, mid_channels, 1,
                                    **conv_args)
        self.short_conv = ConvModule(in_channels, mid_channels, 1,
                                     **conv_args)
        self.blocks = nn.Sequential(*[
            FasterNetBlock(
                mid_channels,
                n_div=n_div,
                mlp_ratio=mlp_ratio,
                drop_path_rate=drop_path_rate,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
                with_cp=with_cp) for _ in range(num_blocks)
        ])
        self.final_conv = ConvModule(2 * mid_channels, out_channels, 1,
                                     **conv_args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.blocks(self.main_conv(x))
        return self.final_conv(torch.cat((main, self.short_conv(x)), dim=1))
