# Copyright (c) fasternet_mm contributors. Licensed under the MIT licence.
"""Partial convolution (PConv) of FasterNet (Chen et al., CVPR 2023), and
PConv as a conv layer for any module built through mmcv's
``build_conv_layer`` / ``ConvModule``: ``conv_cfg=dict(type='PConv',
n_div=4)`` in FPN, UperNet, the mask head, RetinaNet's head and so on.

The layer follows the FasterNet author's rules (the answers in the issues
of github.com/JierunChen/FasterNet): PConv keeps stride 1 and its
channel count; where the channels change, a pointwise conv follows it, with
no activation in between; downsampling stays with regular convs. So a 3x3
stride-1 conv becomes :class:`PartialConv` followed by a 1x1 conv (the
paper's T-shaped receptive field, for any channel counts), a 1x1 conv stays
a plain ``nn.Conv2d``, and any other conv is refused with its settings
named.
"""
from numbers import Integral
from typing import Tuple, Union

import torch
from mmengine.model import kaiming_init
from torch import nn
from torch.nn.modules.utils import _pair

from ...registry import MODELS

# The name in conv_cfg; mmcv's build_conv_layer looks it up from the
# current default scope's registry upwards to MMEngine's root registry,
# where fasternet_mm.registry.register_conv_layers puts it.
CONV_LAYER_NAME = 'PConv'


@MODELS.register_module()
class PartialConv(nn.Module):
    """Partial convolution (PConv): a 3x3 conv on the first ``channels //
    n_div`` channels; the other channels pass through untouched.

    Two forward forms compute the same numbers:

    - ``'split_cat'`` (training form): split, convolve, concatenate.
    - ``'slicing'``: write the convolved channels into a copy of the input.
      The original code wrote into the input itself, which silently changed
      the residual shortcut of the enclosing block; this one never does.

    Args:
        channels (int): Number of input and output channels.
        n_div (int): The convolved part is ``channels // n_div`` channels.
            Defaults to 4, as in every FasterNet.
        forward_type (str): ``'split_cat'`` or ``'slicing'``.
            Defaults to ``'split_cat'``.
    """

    forward_types = ('split_cat', 'slicing')

    def __init__(self,
                 channels: int,
                 n_div: int = 4,
                 forward_type: str = 'split_cat') -> None:
        super().__init__()
        if channels // n_div < 1:
            raise ValueError(f'PartialConv needs channels // n_div >= 1, got '
                             f'channels={channels} and n_div={n_div}')
        self.conv_channels = channels // n_div
        self.untouched_channels = channels - self.conv_channels
        self.conv = nn.Conv2d(
            self.conv_channels, self.conv_channels, 3, 1, 1, bias=False)
        self.forward_type = forward_type

    @property
    def forward_type(self) -> str:
        return self._forward_type

    @forward_type.setter
    def forward_type(self, value: str) -> None:
        if value not in self.forward_types:
            raise ValueError(f'forward_type must be one of '
                             f'{self.forward_types}, got {value!r}')
        self._forward_type = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._forward_type == 'split_cat':
            convolved, untouched = torch.split(
                x, [self.conv_channels, self.untouched_channels], dim=1)
            return torch.cat((self.conv(convolved), untouched), dim=1)
        out = x.clone()
        out[:, :self.conv_channels] = self.conv(x[:, :self.conv_channels])
        return out

    def extra_repr(self) -> str:
        return (f'conv_channels={self.conv_channels}, '
                f'untouched_channels={self.untouched_channels}, '
                f'forward_type={self._forward_type!r}')


class PartialConvPointwise(nn.Module):
    """PConv on ``in_channels // n_div`` channels, then a 1x1 conv to
    ``out_channels``: a 3x3 conv's drop-in with a T-shaped receptive field.

    It carries the attributes ``ConvModule`` reads from its conv
    (``in_channels``, ``kernel_size``, ``stride``, ``padding``, ...) with the
    values of the 3x3 conv it replaces, and initialises its weights itself
    (as ``ConvModule`` would a plain conv: Kaiming normal, zero bias), since
    ``ConvModule`` leaves a conv with ``init_weights`` alone. An enclosing
    module's ``init_cfg`` that names ``Conv2d`` re-initialises both convs
    afterwards, as it does every other conv (``FasterNetPAFPN``'s default
    does).

    Args:
        in_channels (int): Channels of the input; PConv keeps them.
        out_channels (int): Channels of the pointwise conv's output.
        n_div (int): PConv convolves ``in_channels // n_div`` channels.
            Defaults to 4.
        bias (bool): Give the pointwise conv a bias. Defaults to True.
        forward_type (str): PConv's forward form, ``'split_cat'`` or
            ``'slicing'``. Defaults to ``'split_cat'``.

    Example:
        >>> import torch
        >>> layer = PartialConvPointwise(64, 96, n_div=4)
        >>> tuple(layer(torch.rand(1, 64, 13, 17)).shape)
        (1, 96, 13, 17)
    """

    # The 3x3 conv this layer stands in for, as ConvModule reads it.
    kernel_size = (3, 3)
    stride = (1, 1)
    padding = (1, 1)
    dilation = (1, 1)
    groups = 1
    transposed = False
    output_padding = (0, 0)
    padding_mode = 'zeros'

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 n_div: int = 4,
                 bias: bool = True,
                 forward_type: str = 'split_cat') -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.partial_conv = PartialConv(in_channels, n_div, forward_type)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
        self.init_weights()

    def init_weights(self) -> None:
        kaiming_init(self.partial_conv.conv)
        kaiming_init(self.pointwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.partial_conv(x))


def _check_int(name: str, value, minimum: int) -> None:
    if not isinstance(value, Integral) or value < minimum:
        raise ValueError(f'PConv {name} must be an int >= {minimum}, got '
                         f'{value!r}')


@MODELS.register_module(CONV_LAYER_NAME)
def partial_conv_layer(in_channels: int,
                       out_channels: int,
                       kernel_size: Union[int, Tuple[int, int]],
                       stride: Union[int, Tuple[int, int]] = 1,
                       padding: Union[int, Tuple[int, int]] = 0,
                       dilation: Union[int, Tuple[int, int]] = 1,
                       groups: int = 1,
                       bias: bool = True,
                       n_div: int = 4,
                       forward_type: str = 'split_cat') -> nn.Module:
    """Build the conv layer for ``conv_cfg=dict(type='PConv', n_div=4)``.

    mmcv's ``build_conv_layer`` calls this with the arguments of the conv it
    builds, as it would call ``nn.Conv2d``.

    Args:
        in_channels (int): Input channels of the conv.
        out_channels (int): Output channels of the conv.
        kernel_size (int | tuple[int, int]): 3 becomes
            :class:`PartialConvPointwise`; 1 stays ``nn.Conv2d``.
        stride (int | tuple[int, int]): Must be 1 for a 3x3 conv.
            Defaults to 1.
        padding (int | tuple[int, int]): Must be 1 for a 3x3 conv.
            Defaults to 0.
        dilation (int | tuple[int, int]): Must be 1 for a 3x3 conv.
            Defaults to 1.
        groups (int): Must be 1 for a 3x3 conv. Defaults to 1.
        bias (bool): Bias of the (pointwise) conv. Defaults to True.
        n_div (int): PConv convolves ``in_channels // n_div`` channels.
            Defaults to 4, as in every FasterNet.
        forward_type (str): PConv's forward form. Defaults to
            ``'split_cat'``.

    Returns:
        nn.Module: A :class:`PartialConvPointwise` for a 3x3 stride-1 conv,
        an ``nn.Conv2d`` for a 1x1 conv.

    Raises:
        ValueError: For any other conv, naming its settings and what PConv
        supports.
    """
    _check_int('n_div', n_div, 1)
    _check_int('in_channels', in_channels, 1)
    _check_int('out_channels', out_channels, 1)
    settings = dict(
        kernel_size=_pair(kernel_size),
        stride=_pair(stride),
        padding=_pair(padding),
        dilation=_pair(dilation),
        groups=groups)
    if settings['kernel_size'] == (1, 1):
        return nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias)
    supported = dict(
        kernel_size=(3, 3),
        stride=(1, 1),
        padding=(1, 1),
        dilation=(1, 1),
        groups=1)
    if settings != supported:
        shown = ', '.join(f'{k}={v}' for k, v in settings.items())
        raise ValueError(
            f'PConv cannot replace the conv with {shown} (in_channels='
            f'{in_channels}, out_channels={out_channels}): it replaces 3x3 '
            f'convs with stride 1, padding 1, dilation 1 and groups 1, and '
            f'keeps 1x1 convs plain. Downsampling and other kernels need a '
            f'regular conv: leave conv_cfg=None for that module')
    if in_channels // n_div < 1:
        raise ValueError(f'PConv needs in_channels // n_div >= 1, got '
                         f'in_channels={in_channels} and n_div={n_div}')
    return PartialConvPointwise(
        in_channels,
        out_channels,
        n_div=n_div,
        bias=bias,
        forward_type=forward_type)
