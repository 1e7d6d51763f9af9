from ..registry import register_conv_layers, register_downstream
from .backbones import ConvDownsample, FasterNet, FasterNetStage
from .layers import (CONV_LAYER_NAME, DeployableMixin, FasterNetBlock,
                     FasterNetCSPLayer, PartialConv, PartialConvPointwise,
                     PConvNeXtBlock, fold_conv_module_norm, fuse_conv_bn,
                     partial_conv_layer)
from .necks import FasterNetPAFPN

__all__ = [
    'CONV_LAYER_NAME', 'ConvDownsample', 'DeployableMixin', 'FasterNet',
    'FasterNetBlock', 'FasterNetCSPLayer', 'FasterNetPAFPN', 'FasterNetStage',
    'PConvNeXtBlock', 'PartialConv', 'PartialConvPointwise',
    'fold_conv_module_norm', 'fuse_conv_bn', 'partial_conv_layer',
    'register_conv_layers', 'register_downstream'
]
