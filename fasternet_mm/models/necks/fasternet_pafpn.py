# Copyright (c) fasternet_mm contributors. Licensed under the MIT licence.
"""A path aggregation neck built from :class:`FasterNetCSPLayer`, for the
one-stage detectors (RTMDet, YOLOX) that users pair with PConv.

The layout is PANet's (Liu et al., CVPR 2018) as mmdet's ``CSPNeXtPAFPN``
uses it. PConv replaces only the dense 3x3 convs of the CSP blocks; a 5x5
depthwise conv still mixes space on every channel, in the blocks and in the
output convs (docs/pconv.md measures the choice against five other necks).
Written from scratch for this package.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from torch import nn

from ...registry import MODELS
from ...typing_utils import ConfigType, OptConfigType, OptMultiConfig
from ..layers import CONV_LAYER_NAME, DeployableMixin, FasterNetCSPLayer

OUT_CONV_TYPES = ('depthwise', 'pconv', 'dense')


@MODELS.register_module()
class FasterNetPAFPN(DeployableMixin, BaseModule):
    """Path aggregation FPN whose CSP layers have PConv bottlenecks.

    A top-down path (1x1 reduce conv, 2x upsampling, concatenation,
    :class:`FasterNetCSPLayer`) and a bottom-up path (3x3 stride-2 regular
    conv, concatenation, :class:`FasterNetCSPLayer`), then one output conv
    per level to ``out_channels``. By default the CSP layers hold
    :class:`PConvNeXtBlock` bottlenecks without residual (as ``CSPNeXtPAFPN``'s
    blocks) and the output convs are 5x5 depthwise-separable: at 96 channels
    on RTMDet-tiny's levels, 0.48x the FLOPs of ``CSPNeXtPAFPN``.
    Downsampling uses regular convs, as the FasterNet author advises.

    Args:
        in_channels (Sequence[int]): Channels of each input level, finest
            first.
        out_channels (int): Channels of every output level.
        num_csp_blocks (int): Bottlenecks per CSP layer. Defaults to 1.
        expand_ratio (float): Width of the CSP layers' paths relative to
            their outputs. Defaults to 0.5.
        n_div (int): PConv convolves ``channels // n_div`` channels, in the
            blocks and the output convs. Defaults to 4.
        block_type (str): The CSP layers' bottleneck, ``'pconvnext'`` or
            ``'fasternet'`` (see :class:`FasterNetCSPLayer`). Defaults to
            ``'pconvnext'``.
        out_conv (str): The output convs: ``'depthwise'`` (5x5
            depthwise-separable), ``'pconv'`` (3x3 in its PConv form: PConv,
            then a pointwise conv) or ``'dense'`` (3x3). Defaults to
            ``'depthwise'``.
        mlp_ratio (float, optional): Hidden width of ``'fasternet'``
            blocks' MLPs. Defaults to None (2.0).
        upsample_cfg (dict): Arguments of ``nn.Upsample`` in the top-down
            path. Defaults to ``dict(scale_factor=2, mode='nearest')``.
        conv_cfg (dict, optional): Config of the regular convs (1x1 and the
            stride-2 downsampling). Defaults to None (``nn.Conv2d``).
        norm_cfg (dict): Config of every norm layer. Defaults to
            ``dict(type='BN', momentum=0.03, eps=0.001)``.
        act_cfg (dict): Config of every activation. Defaults to
            ``dict(type='SiLU')``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to PyTorch's own conv init (Kaiming uniform) on every
            ``Conv2d``, PConv's included, as mmdet's PAFPN necks use.

    Example:
        >>> import torch
        >>> neck = FasterNetPAFPN([80, 160, 320], 96).eval()
        >>> feats = [torch.rand(1, c, 32 // 2**i, 32 // 2**i)
        ...          for i, c in enumerate([80, 160, 320])]
        >>> for out in neck(feats):
        ...     print(tuple(out.shape))
        (1, 96, 32, 32)
        (1, 96, 16, 16)
        (1, 96, 8, 8)
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 num_csp_blocks: int = 1,
                 expand_ratio: float = 0.5,
                 n_div: int = 4,
                 block_type: str = 'pconvnext',
                 out_conv: str = 'depthwise',
                 mlp_ratio: Optional[float] = None,
                 upsample_cfg: ConfigType = dict(
                     scale_factor=2, mode='nearest'),
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(
                     type='BN', momentum=0.03, eps=0.001),
                 act_cfg: ConfigType = dict(type='SiLU'),
                 init_cfg: OptMultiConfig = dict(
                     type='Kaiming',
                     layer='Conv2d',
                     a=math.sqrt(5),
                     distribution='uniform',
                     mode='fan_in',
                     nonlinearity='leaky_relu')) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) < 2:
            raise ValueError(f'FasterNetPAFPN needs at least 2 input levels, '
                             f'got in_channels={list(in_channels)}')
        if out_conv not in OUT_CONV_TYPES:
            raise ValueError(f'out_conv must be one of {OUT_CONV_TYPES}, got '
                             f'{out_conv!r}')
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        conv_args = dict(
            conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        csp_args = dict(
            num_blocks=num_csp_blocks,
            expand_ratio=expand_ratio,
            n_div=n_div,
            block_type=block_type,
            mlp_ratio=mlp_ratio,
            **conv_args)
        if block_type == 'pconvnext':
            # As mmdet's CSPNeXtPAFPN: no residual inside the neck's blocks.
            csp_args['add_identity'] = False
        self.upsample = nn.Upsample(**upsample_cfg)
        # Top-down, from the coarsest level: reduce it to the width of the
        # next finer level, upsample, concatenate, fuse.
        self.reduce_layers = nn.ModuleList()
        self.top_down_blocks = nn.ModuleList()
        for level in range(len(in_channels) - 1, 0, -1):
            finer = in_channels[level - 1]
            self.reduce_layers.append(
                ConvModule(in_channels[level], finer, 1, **conv_args))
            self.top_down_blocks.append(
                FasterNetCSPLayer(2 * finer, finer, **csp_args))
        # Bottom-up, from the finest level: downsample, concatenate, fuse.
        self.downsamples = nn.ModuleList()
        self.bottom_up_blocks = nn.ModuleList()
        for level in range(len(in_channels) - 1):
            channels = in_channels[level]
            self.downsamples.append(
                ConvModule(
                    channels, channels, 3, stride=2, padding=1, **conv_args))
            self.bottom_up_blocks.append(
                FasterNetCSPLayer(2 * channels, in_channels[level + 1],
                                  **csp_args))
        self.out_convs = nn.ModuleList(
            self._out_conv(out_conv, channels, out_channels, n_div,
                           conv_args) for channels in in_channels)

    @staticmethod
    def _out_conv(kind: str, in_channels: int, out_channels: int,
                  n_div: int, conv_args: Dict) -> nn.Module:
        if kind == 'depthwise':
            return DepthwiseSeparableConvModule(
                in_channels, out_channels, 5, padding=2, **conv_args)
        if kind == 'pconv':
            conv_args = dict(
                conv_args,
                conv_cfg=dict(
                    type=f'fasternet_mm.{CONV_LAYER_NAME}', n_div=n_div))
        return ConvModule(
            in_channels, out_channels, 3, padding=1, **conv_args)

    def forward(self,
                inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(
                f'FasterNetPAFPN was built for {len(self.in_channels)} levels '
                f'(in_channels={self.in_channels}) but got {len(inputs)}')
        # inner[0] is the coarsest map processed so far, finest first.
        inner = [inputs[-1]]
        for i, level in enumerate(range(len(inputs) - 1, 0, -1)):
            coarse = self.reduce_layers[i](inner[0])
            inner[0] = coarse
            merged = torch.cat((self.upsample(coarse), inputs[level - 1]), 1)
            inner.insert(0, self.top_down_blocks[i](merged))
        outs = [inner[0]]
        for i in range(len(inputs) - 1):
            merged = torch.cat((self.downsamples[i](outs[-1]), inner[i + 1]),
                               1)
            outs.append(self.bottom_up_blocks[i](merged))
        return tuple(conv(out) for conv, out in zip(self.out_convs, outs))
