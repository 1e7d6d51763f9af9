"""FasterNet backbones for MMDetection 3 and MMSegmentation 1.

``import fasternet_mm`` (or ``custom_imports=dict(imports=['fasternet_mm'])``
in a config) registers :class:`FasterNet` as ``'FasterNet'`` in the model
registries of mmdet and mmseg, whichever are installed, and as
``'fasternet_mm.FasterNet'`` everywhere; likewise its building blocks
(``PartialConv``, ``FasterNetBlock``, ``PConvNeXtBlock``,
``FasterNetCSPLayer``, ``FasterNetPAFPN``), and the conv layer
``conv_cfg=dict(type='PConv')``. All of it happens in
:func:`register_all_modules` (:mod:`fasternet_mm.registry`).
"""
from .checkpoint import allow_mmengine_checkpoints, mmengine_checkpoints
from .deploy import switch_to_deploy
from .hooks import InferenceFormHook, RandomStateHook
from .models import (FasterNet, FasterNetBlock, FasterNetCSPLayer,
                     FasterNetPAFPN, PartialConv, PConvNeXtBlock)
from .ops import GatherRoIAlign
from .precision import use_amp, use_fp32, use_low_precision
from .registry import (register_all_modules, register_conv_layers,
                       register_downstream, register_roi_layers)
from .version import __version__

register_all_modules()

__all__ = [
    'FasterNet', 'FasterNetBlock', 'FasterNetCSPLayer', 'FasterNetPAFPN',
    'GatherRoIAlign', 'InferenceFormHook', 'PConvNeXtBlock', 'PartialConv',
    'RandomStateHook',
    'allow_mmengine_checkpoints', 'mmengine_checkpoints',
    'register_all_modules', 'register_conv_layers', 'register_downstream',
    'register_roi_layers', 'switch_to_deploy', 'use_amp', 'use_fp32',
    'use_low_precision', '__version__'
]
