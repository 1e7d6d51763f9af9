# Copyright (c) fasternet_mm contributors. Licensed under the MIT licence.
"""FasterNet backbone for MMDetection 3 and MMSegmentation 1.

Paper: Jierun Chen et al., "Run, Don't Walk: Chasing Higher FLOPS for Faster
Neural Networks", CVPR 2023 (arXiv:2303.03667).
Original code (MIT licence): github.com/JierunChen/FasterNet. The
architecture facts (widths, depths, activations, drop-path rates) follow its
configs; the code here is written from scratch for MMEngine.
"""
import copy
import warnings
from collections import OrderedDict
from numbers import Integral
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from ...checkpoint import (CheckpointError, convert_state_dict, detect_layout,
                           load_pretrained)
from ...cpu_isa import onednn_isa
from ...deprecation import deprecated_alias
from ...registry import MODELS
from ...typing_utils import ConfigType, OptConfigType, OptMultiConfig
from ..layers import DeployableMixin, FasterNetBlock, fuse_conv_bn

# The smallest input that survives the four downsamplings (4, 2, 2, 2).
MIN_INPUT_SIZE = 32


class ConvDownsample(DeployableMixin, nn.Module):
    """A bias-free conv with kernel size equal to its stride, then a norm.

    FasterNet uses it as the 4x4 patch embedding and as the 2x2 patch merging
    between stages.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 norm_cfg: ConfigType) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, stride, stride, bias=False)
        self.norm = build_norm_layer(norm_cfg, out_channels)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))

    def _switch_own_layers(self) -> None:
        """Fold the BatchNorm into the conv."""
        if isinstance(self.norm, _BatchNorm):
            self.conv = fuse_conv_bn(self.conv, self.norm)
            self.norm = nn.Identity()


def _unchanged(x: torch.Tensor) -> torch.Tensor:
    return x


class FasterNetStage(nn.Module):
    """An optional 2x2 patch merging followed by a sequence of blocks."""

    def __init__(self, downsample: Optional[nn.Module],
                 blocks: List[nn.Module]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(
        self,
        x: torch.Tensor,
        to_memory_format: Callable[[torch.Tensor], torch.Tensor] = _unchanged
    ) -> torch.Tensor:
        """``to_memory_format`` may change the memory format of the
        merging's and the blocks' inputs (FasterNet's deploy form does)."""
        if self.downsample is not None:
            x = self.downsample(to_memory_format(x))
        return self.blocks(to_memory_format(x))


@MODELS.register_module()
class FasterNet(DeployableMixin, BaseModule):
    """FasterNet backbone.

    A PyTorch implementation of `Run, Don't Walk: Chasing Higher FLOPS for
    Faster Neural Networks <https://arxiv.org/abs/2303.03667>`_ (CVPR 2023).

    Args:
        arch (str | dict): One of ``'t0'``, ``'t1'``, ``'t2'``, ``'s'``,
            ``'m'``, ``'l'``, or a dict with the keys ``embed_dim``,
            ``depths``, ``mlp_ratio``, ``n_div``, ``act_cfg`` and
            ``drop_path_rate``. Defaults to ``'s'``.
        in_channels (int): Number of input image channels. Defaults to 3.
        drop_path_rate (float, optional): Stochastic depth rate, growing
            linearly from 0 over all blocks. Defaults to the arch's ImageNet
            rate.
        out_indices (int | Sequence[int]): Stages whose features are
            returned; negative indices count from the last stage.
            Defaults to (0, 1, 2, 3).
        out_norm (bool): Put a norm layer (``norm{i}``) on each returned
            feature map, as the official detection and segmentation models
            do. Set it to False for raw stage outputs. Defaults to True.
        frozen_stages (int): -1 freezes nothing, 0 the patch embedding,
            ``i`` the patch embedding, stages 1..i and their output norms.
            Defaults to -1.
        norm_cfg (dict): Config of every norm layer. Defaults to
            ``dict(type='BN')``.
        act_cfg (dict, optional): Activation inside the blocks. Defaults to
            the arch's (GELU for t0 and t1, in-place ReLU otherwise).
        norm_eval (bool): Keep every BatchNorm in eval mode during training
            (frozen running statistics). Defaults to False.
        with_cp (bool): Use gradient checkpointing in each block, trading
            compute for memory. Defaults to False.
        init_cfg (dict | list[dict], optional): Initialization config.
            ``dict(type='Pretrained', checkpoint=..., prefix=...)`` loads any
            of the three supported checkpoint layouts (see
            :mod:`fasternet_mm.checkpoint`). Defaults to None, a truncated
            normal init of the convs.

    Example:
        >>> import torch
        >>> from fasternet_mm import FasterNet
        >>> model = FasterNet(arch='t0').eval()
        >>> for level_out in model(torch.rand(1, 3, 97, 131)):
        ...     print(tuple(level_out.shape))
        (1, 40, 24, 32)
        (1, 80, 12, 16)
        (1, 160, 6, 8)
        (1, 320, 3, 4)
    """

    arch_settings = {
        't0':
        dict(
            embed_dim=40,
            depths=(1, 2, 8, 2),
            act_cfg=dict(type='GELU'),
            drop_path_rate=0.0),
        't1':
        dict(
            embed_dim=64,
            depths=(1, 2, 8, 2),
            act_cfg=dict(type='GELU'),
            drop_path_rate=0.02),
        't2':
        dict(
            embed_dim=96,
            depths=(1, 2, 8, 2),
            act_cfg=dict(type='ReLU', inplace=True),
            drop_path_rate=0.05),
        's':
        dict(
            embed_dim=128,
            depths=(1, 2, 13, 2),
            act_cfg=dict(type='ReLU', inplace=True),
            drop_path_rate=0.1),
        'm':
        dict(
            embed_dim=144,
            depths=(3, 4, 18, 3),
            act_cfg=dict(type='ReLU', inplace=True),
            drop_path_rate=0.2),
        'l':
        dict(
            embed_dim=192,
            depths=(3, 4, 18, 3),
            act_cfg=dict(type='ReLU', inplace=True),
            drop_path_rate=0.3),
    }
    # Shared by every official variant.
    arch_defaults = dict(mlp_ratio=2.0, n_div=4)
    arch_keys = ('embed_dim', 'depths', 'mlp_ratio', 'n_div', 'act_cfg',
                 'drop_path_rate')
    num_stages = 4
    patch_size = 4
    # The deploy form's memory-format rules, each as the smallest map (in
    # pixels) that runs channels-last, None for none. 'channels_last' also
    # puts the conv weights channels-last.
    channels_last_min_pixels = 32 * 32
    memory_format_rules = {
        'channels_last': 0,
        'channels_last_large': channels_last_min_pixels,
        'contiguous': None,
    }
    # The rule 'cuda' and 'cpu' pick; on a CPU by the instruction set
    # oneDNN runs (fasternet_mm.cpu_isa.onednn_isa), as measured at
    # 800x1216 on 2 cores (docs/deploy.md, with the figures and their
    # commands). Unmeasured ISAs run torch's default format.
    device_memory_formats = {
        'cuda': 'channels_last',
        'avx512': 'channels_last_large',
        'avx2': 'contiguous',
        'other': 'contiguous',
    }

    def __init__(self,
                 arch: Union[str, dict] = 's',
                 in_channels: int = 3,
                 drop_path_rate: Optional[float] = None,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 out_norm: bool = True,
                 frozen_stages: int = -1,
                 norm_cfg: ConfigType = dict(type='BN'),
                 act_cfg: OptConfigType = None,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='TruncNormal', layer='Conv2d', std=0.02),
                dict(
                    type='Constant',
                    layer=['_BatchNorm', 'GroupNorm'],
                    val=1,
                    bias=0),
            ]
        super().__init__(init_cfg=init_cfg)
        arch = self.parse_arch(arch)
        if act_cfg is not None:
            arch['act_cfg'] = act_cfg
        if drop_path_rate is not None:
            arch['drop_path_rate'] = drop_path_rate
        self._check_arch(arch)
        if not isinstance(in_channels, Integral) or in_channels < 1:
            raise ValueError(
                f'in_channels must be a positive int, got {in_channels!r}')
        self.arch = arch
        self.in_channels = in_channels
        self.out_indices = self.normalize_out_indices(out_indices)
        if not isinstance(frozen_stages, Integral) or not (-1 <= frozen_stages
                                                           <= self.num_stages):
            raise ValueError(
                f'frozen_stages must be an int in [-1, {self.num_stages}], '
                f'got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.out_norm = out_norm
        self.memory_format = None  # the deploy form's memory-format rule

        embed_dim = arch['embed_dim']
        depths = arch['depths']
        self.channels = self.stage_channels(embed_dim)
        self.patch_embed = ConvDownsample(in_channels, embed_dim,
                                          self.patch_size, norm_cfg)
        block_rates = torch.linspace(0, arch['drop_path_rate'],
                                     sum(depths)).tolist()
        self.stages = nn.ModuleList()
        for i, (channels, depth) in enumerate(zip(self.channels, depths)):
            downsample = None
            if i > 0:
                downsample = ConvDownsample(self.channels[i - 1], channels, 2,
                                            norm_cfg)
            first = sum(depths[:i])
            blocks = [
                FasterNetBlock(
                    channels,
                    n_div=arch['n_div'],
                    mlp_ratio=arch['mlp_ratio'],
                    drop_path_rate=block_rates[first + j],
                    norm_cfg=norm_cfg,
                    act_cfg=arch['act_cfg'],
                    with_cp=with_cp) for j in range(depth)
            ]
            self.stages.append(FasterNetStage(downsample, blocks))
        if out_norm:
            for i in self.out_indices:
                self.add_module(
                    f'norm{i}',
                    build_norm_layer(norm_cfg, self.channels[i])[1])
        self._freeze_stages()

    @classmethod
    def parse_arch(cls, arch: Union[str, Dict]) -> Dict:
        """Return a full arch dict for an arch name or a (partial) dict."""
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_settings:
                raise ValueError(
                    f'Unknown FasterNet arch {arch!r}; choose one of '
                    f'{sorted(cls.arch_settings)} or pass a dict with the '
                    f'keys {cls.arch_keys}')
            return {
                **cls.arch_defaults,
                **copy.deepcopy(cls.arch_settings[key])
            }
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got '
                            f'{type(arch).__name__}: {arch!r}')
        unknown = set(arch) - set(cls.arch_keys)
        if unknown:
            raise ValueError(f'arch dict has unknown keys {sorted(unknown)}; '
                             f'valid keys are {cls.arch_keys}')
        arch = {**cls.arch_defaults, **copy.deepcopy(dict(arch))}
        missing = [k for k in cls.arch_keys if k not in arch]
        if missing:
            raise ValueError(f'arch dict is missing the keys {missing}; '
                             f'it needs {cls.arch_keys}')
        return arch

    @classmethod
    def _check_arch(cls, arch: Dict) -> None:
        embed_dim, depths = arch['embed_dim'], arch['depths']
        if not isinstance(embed_dim, Integral) or embed_dim < 1:
            raise ValueError(f'arch embed_dim must be a positive int, got '
                             f'{embed_dim!r}')
        if (not isinstance(depths, Sequence) or len(depths) != cls.num_stages
                or not all(isinstance(d, Integral) and d >= 1
                           for d in depths)):
            raise ValueError(
                f'arch depths must be {cls.num_stages} positive ints, got '
                f'{depths!r}')
        arch['depths'] = tuple(depths)
        n_div = arch['n_div']
        if not isinstance(n_div, Integral) or not 1 <= n_div <= embed_dim:
            raise ValueError(f'arch n_div must be an int in [1, embed_dim='
                             f'{embed_dim}], got {n_div!r}')
        mlp_ratio = arch['mlp_ratio']
        if not isinstance(mlp_ratio, (int, float)) or mlp_ratio <= 0:
            raise ValueError(f'arch mlp_ratio must be a positive number, got '
                             f'{mlp_ratio!r}')
        rate = arch['drop_path_rate']
        if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(
                f'drop_path_rate must be a number in [0, 1), got {rate!r}')
        if not isinstance(arch['act_cfg'],
                          dict) or 'type' not in arch['act_cfg']:
            raise ValueError(f'act_cfg must be a dict with a "type" key, got '
                             f'{arch["act_cfg"]!r}')

    @classmethod
    def stage_channels(cls, embed_dim: int) -> Tuple[int, ...]:
        """Width of each stage: the embedding width, doubled per stage."""
        return tuple(embed_dim * 2**i for i in range(cls.num_stages))

    @classmethod
    def normalize_out_indices(
            cls, out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        """Sorted, non-negative stage indices; raises on bad ones."""
        if isinstance(out_indices, Integral):
            out_indices = [out_indices]
        if not isinstance(out_indices, Sequence) or not out_indices:
            raise TypeError(f'out_indices must be an int or a non-empty '
                            f'sequence of ints, got {out_indices!r}')
        valid = range(-cls.num_stages, cls.num_stages)
        normalized = []
        for index in out_indices:
            if not isinstance(index, Integral) or index not in valid:
                raise ValueError(
                    f'out_indices entries must be ints in '
                    f'[{-cls.num_stages}, {cls.num_stages - 1}], got '
                    f'{index!r} in {out_indices!r}')
            normalized.append(int(index) % cls.num_stages)
        if len(set(normalized)) != len(normalized):
            raise ValueError(f'out_indices {out_indices!r} name a stage more '
                             f'than once (as {normalized})')
        return tuple(sorted(normalized))

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of each returned feature map, e.g. for a neck."""
        return tuple(self.channels[i] for i in self.out_indices)

    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules = [self.patch_embed]
        for i in range(self.frozen_stages):
            modules.append(self.stages[i])
            if self.out_norm and i in self.out_indices:
                modules.append(getattr(self, f'norm{i}'))
        return modules

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'FasterNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def init_weights(self) -> None:
        init_cfg = self.init_cfg
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            load_pretrained(self, init_cfg)
            self._is_init = True
            return
        super().init_weights()

    def switch_to_deploy(self,
                         memory_format: Optional[str] = None,
                         layout: Optional[str] = None) -> None:
        """Fold every BatchNorm that follows a conv into that conv (patch
        embedding, merges, and the first 1x1 conv of each block) and put the
        model in eval mode. The output norms stay: their input also feeds
        the next stage. Idempotent; load weights and move the model to its
        device before calling it.

        Args:
            memory_format (str, optional): The rule for the memory format
                of the maps inside the backbone (see
                :meth:`_to_deploy_memory_format`), one of
                :attr:`memory_format_rules` (``'channels_last'``,
                ``'channels_last_large'``, ``'contiguous'``), or ``'cuda'``
                or ``'cpu'`` for the rule measured fastest there
                (:attr:`device_memory_formats`; on a CPU by the instruction
                set oneDNN runs). Under ``'channels_last'`` the conv weights
                also go channels-last, to match the maps (a conv given NCHW
                weights and NHWC maps copies its weights at every call).
                None picks ``'cuda'`` or ``'cpu'`` by the device the weights
                are on. Any rule runs on any device, which is how the tests
                check them. Either way the outputs are NCHW-contiguous.
            layout (str, optional): Deprecated name of ``memory_format``.
        """
        memory_format = deprecated_alias('FasterNet.switch_to_deploy',
                                         'layout', layout, 'memory_format',
                                         memory_format)
        memory_format = self.resolve_memory_format(
            memory_format, self.patch_embed.conv.weight.device)
        super().switch_to_deploy()
        self.memory_format = memory_format
        # Weights follow the rule both ways: a conv given a channels-last
        # weight returns channels-last maps, whatever its input.
        self.to(memory_format=torch.channels_last if memory_format ==
                'channels_last' else torch.contiguous_format)
        self.eval()

    @classmethod
    def resolve_memory_format(cls, memory_format: Optional[str],
                              device: Union[str, torch.device] = 'cpu') -> str:
        """The rule (a key of :attr:`memory_format_rules`) that
        ``switch_to_deploy(memory_format=...)`` runs for a model on
        ``device``: a rule stays itself, ``'cuda'`` and ``'cpu'`` become
        their measured rule, None that of ``device``'s type."""
        if memory_format is None:
            memory_format = 'cuda' if torch.device(
                device).type == 'cuda' else 'cpu'
        if memory_format == 'cpu':
            return cls.device_memory_formats[onednn_isa()]
        if memory_format == 'cuda':
            return cls.device_memory_formats['cuda']
        if memory_format not in cls.memory_format_rules:
            raise ValueError(
                f'memory_format must be one of '
                f"{tuple(cls.memory_format_rules) + ('cpu', 'cuda')} or None "
                f'(by device), got {memory_format!r}')
        return memory_format

    @property
    def layout(self) -> Optional[str]:
        """Deprecated name of :attr:`memory_format`."""
        warnings.warn(
            'FasterNet.layout is deprecated; use FasterNet.memory_format',
            DeprecationWarning,
            stacklevel=2)
        return self.memory_format

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Runs before the children load, on every load path (load_from,
        # load_checkpoint, load_state_dict): rename official and timm keys
        # under our prefix in place, so those checkpoints load as they are.
        own = {k[len(prefix):]: k for k in state_dict if k.startswith(prefix)}
        try:
            key_layout = detect_layout(own)
        except CheckpointError:
            key_layout = 'fasternet_mm'  # let the usual missing/unexpected
        if key_layout != 'fasternet_mm':
            converted = convert_state_dict(
                OrderedDict(
                    (k, state_dict.pop(full)) for k, full in own.items()),
                key_layout)
            state_dict.update((prefix + k, v) for k, v in converted.items())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)
            raise ValueError(
                f'FasterNet expects a 4-D NCHW tensor, got {shape}')
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'FasterNet was built with in_channels={self.in_channels} '
                f'but the input has {x.shape[1]} channels (shape '
                f'{tuple(x.shape)})')
        if min(x.shape[2:]) < MIN_INPUT_SIZE:
            raise ValueError(
                f'FasterNet needs inputs of at least {MIN_INPUT_SIZE}x'
                f'{MIN_INPUT_SIZE} (one stride-32 cell), got '
                f'{tuple(x.shape[2:])}')

    def _to_deploy_memory_format(self, x: torch.Tensor) -> torch.Tensor:
        """The memory format of a map inside the deploy form, by the rule
        of ``self.memory_format``, each chosen by measurement
        (docs/deploy.md, with the figures and their commands):

        - ``'channels_last'`` (CUDA): channels-last on every map; the
          per-size rule ran slower on CUDA.
        - ``'channels_last_large'`` (CPUs where oneDNN runs AVX-512):
          channels-last for maps of at least ``channels_last_min_pixels``
          pixels, NCHW for smaller ones: channels-last speeds up large
          maps, but its 1x1 convs on small maps (7x7 at 224x224) run slower
          than in NCHW.
        - ``'contiguous'`` (CPUs where oneDNN runs AVX2 at best): NCHW on
          every map; oneDNN's AVX2 convs run channels-last maps slower.
        """
        smallest = self.memory_format_rules[self.memory_format]
        last = smallest is not None and x.shape[2] * x.shape[3] >= smallest
        return x.contiguous(memory_format=torch.channels_last
                            if last else torch.contiguous_format)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self._check_input(x)
        to_memory_format = (
            self._to_deploy_memory_format if self.deploy else _unchanged)
        x = self.patch_embed(to_memory_format(x))
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x, to_memory_format)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x) if self.out_norm else x
                # Necks and heads may hold ops (mmcv's RoIAlign among them)
                # that read raw memory as NCHW whatever the strides say.
                outs.append(out.contiguous() if self.deploy else out)
        return tuple(outs)
