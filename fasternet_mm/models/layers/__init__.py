from .bn_folding import fold_conv_module_norm, fuse_conv_bn
from .csp_layer import FasterNetCSPLayer, PConvNeXtBlock
from .fasternet_block import FasterNetBlock
from .partial_conv import (CONV_LAYER_NAME, PartialConv, PartialConvPointwise,
                           partial_conv_layer)
from .reparam import DeployableMixin

__all__ = [
    'CONV_LAYER_NAME', 'DeployableMixin', 'FasterNetBlock',
    'FasterNetCSPLayer', 'PConvNeXtBlock', 'PartialConv',
    'PartialConvPointwise', 'fold_conv_module_norm', 'fuse_conv_bn',
    'partial_conv_layer'
]
