# Copyright (c) fasternet_mm contributors. Licensed under the MIT licence.
"""A Cross Stage Partial layer whose bottlenecks use PConv.

The CSP layout follows CSPNet (Wang et al., CVPRW 2020) as mmdet's
``CSPLayer`` uses it. The bottlenecks are either :class:`PConvNeXtBlock`
(CSPNeXt's block with its dense 3x3 conv as PConv + pointwise conv, then
its 5x5 depthwise-separable conv) or :class:`FasterNetBlock`, as in the
"C2f_Faster"-style blocks that public YOLO ports pair with PConv. Written
from scratch for this package.
"""
from typing import Optional

import torch
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from torch import nn

from ...registry import MODELS
from ...typing_utils import ConfigType, OptConfigType, OptMultiConfig
from .fasternet_block import FasterNetBlock
from .partial_conv import CONV_LAYER_NAME
from .reparam import DeployableMixin

BLOCK_TYPES = ('pconvnext', 'fasternet')


@MODELS.register_module()
class PConvNeXtBlock(DeployableMixin, BaseModule):
    """CSPNeXt's bottleneck with PConv in place of its dense 3x3 conv.

    A 3x3 conv in its PConv form (PConv on ``in_channels // n_div``
    channels, then a pointwise conv to the hidden width, BN and activation),
    then a ``kernel_size`` depthwise-separable conv (depthwise conv, BN,
    activation, pointwise conv, BN, activation), plus the input when
    ``add_identity`` and the widths match. The depthwise conv mixes space
    on every channel; PConv mixes it on a part of them at a fraction of the
    dense conv's cost.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expansion (float): Hidden width relative to ``out_channels``.
            Defaults to 1.0, as in the CSP layers of mmdet's necks.
        n_div (int): PConv convolves ``in_channels // n_div`` channels.
            Defaults to 4.
        kernel_size (int): Kernel of the depthwise conv. Defaults to 5.
        add_identity (bool): Add the input to the output when the widths
            match. Defaults to True.
        conv_cfg (dict, optional): Config of the depthwise-separable conv.
            Defaults to None (``nn.Conv2d``).
        norm_cfg (dict): Config of every norm layer. Defaults to
            ``dict(type='BN', momentum=0.03, eps=0.001)``.
        act_cfg (dict): Config of every activation. Defaults to
            ``dict(type='SiLU')``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None.

    Example:
        >>> import torch
        >>> block = PConvNeXtBlock(32, 32).eval()
        >>> tuple(block(torch.rand(1, 32, 13, 17)).shape)
        (1, 32, 13, 17)
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expansion: float = 1.0,
                 n_div: int = 4,
                 kernel_size: int = 5,
                 add_identity: bool = True,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(
                     type='BN', momentum=0.03, eps=0.001),
                 act_cfg: ConfigType = dict(type='SiLU'),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(kernel_size, int) or kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be an odd int, got '
                             f'{kernel_size!r}')
        hidden_channels = int(out_channels * expansion)
        self.conv1 = ConvModule(
            in_channels,
            hidden_channels,
            3,
            padding=1,
            conv_cfg=dict(type=f'fasternet_mm.{CONV_LAYER_NAME}', n_div=n_div),
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.conv2 = DepthwiseSeparableConvModule(
            hidden_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


@MODELS.register_module()
class FasterNetCSPLayer(DeployableMixin, BaseModule):
    """Cross Stage Partial layer whose bottlenecks use PConv.

    Two 1x1 convs split the input into a main and a short path of
    ``int(out_channels * expand_ratio)`` channels each. The main path runs
    through ``num_blocks`` bottlenecks; a 1x1 conv fuses both paths into
    ``out_channels``. The bottleneck is :class:`PConvNeXtBlock` (PConv +
    pointwise conv, then a 5x5 depthwise-separable conv; as mmdet's CSP
    layers with CSPNeXt blocks) or :class:`FasterNetBlock` (PConv, then a
    pointwise MLP, plus the residual).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expand_ratio (float): Width of each path relative to
            ``out_channels``. Defaults to 0.5.
        num_blocks (int): Number of bottlenecks (of ``block_type``).
            Defaults to 1.
        n_div (int): PConv convolves ``channels // n_div`` of each block's
            channels. Defaults to 4.
        block_type (str): ``'pconvnext'`` or ``'fasternet'``. Defaults to
            ``'pconvnext'``.
        add_identity (bool): Residual connections in ``'pconvnext'``
            blocks (``'fasternet'`` blocks always have one). Defaults to
            True.
        mlp_ratio (float, optional): Hidden width of each ``'fasternet'``
            block's MLP. Defaults to None (2.0).
        drop_path_rate (float): Stochastic depth rate of every
            ``'fasternet'`` block. Defaults to 0.
        conv_cfg (dict, optional): Config of the 1x1 convs. Defaults to
            None (``nn.Conv2d``).
        norm_cfg (dict): Config of every norm layer. Defaults to
            ``dict(type='BN', momentum=0.03, eps=0.001)``.
        act_cfg (dict): Config of every activation, in the convs and the
            blocks' MLPs. Defaults to ``dict(type='SiLU')``.
        with_cp (bool): Gradient checkpointing in ``'fasternet'`` blocks.
            Defaults to False.
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
                 block_type: str = 'pconvnext',
                 add_identity: bool = True,
                 mlp_ratio: Optional[float] = None,
                 drop_path_rate: float = 0.0,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(
                     type='BN', momentum=0.03, eps=0.001),
                 act_cfg: ConfigType = dict(type='SiLU'),
                 with_cp: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if block_type not in BLOCK_TYPES:
            raise ValueError(f'block_type must be one of {BLOCK_TYPES}, got '
                             f'{block_type!r}')
        if block_type == 'pconvnext':
            fasternet_only = dict(
                mlp_ratio=mlp_ratio is not None,
                drop_path_rate=drop_path_rate != 0,
                with_cp=with_cp)
            unused = [name for name, given in fasternet_only.items() if given]
            if unused:
                raise ValueError(
                    f'{", ".join(unused)} only apply to '
                    f"block_type='fasternet', got block_type='pconvnext'")
        elif not add_identity:
            raise ValueError("block_type='fasternet' blocks always add "
                             'their input; add_identity=False needs '
                             "block_type='pconvnext'")
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
        if block_type == 'pconvnext':
            blocks = [
                PConvNeXtBlock(
                    mid_channels,
                    mid_channels,
                    n_div=n_div,
                    add_identity=add_identity,
                    **conv_args) for _ in range(num_blocks)
            ]
        else:
            blocks = [
                FasterNetBlock(
                    mid_channels,
                    n_div=n_div,
                    mlp_ratio=2.0 if mlp_ratio is None else mlp_ratio,
                    drop_path_rate=drop_path_rate,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg,
                    with_cp=with_cp) for _ in range(num_blocks)
            ]
        self.blocks = nn.Sequential(*blocks)
        self.final_conv = ConvModule(2 * mid_channels, out_channels, 1,
                                     **conv_args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.blocks(self.main_conv(x))
        return self.final_conv(torch.cat((main, self.short_conv(x)), dim=1))
