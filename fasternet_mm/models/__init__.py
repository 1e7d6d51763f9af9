import importlib

from .csp_layers import FasterNetCSPLayer
from .fasternet import (ConvDownsample, FasterNet, FasterNetBlock,
                        FasterNetStage, PartialConv)
from .necks import FasterNetPAFPN
from .pconv_layers import (PartialConvPointwise, partial_conv_layer,
                           register_conv_layers)

__all__ = [
    'ConvDownsample', 'FasterNet', 'FasterNetBlock', 'FasterNetCSPLayer',
    'FasterNetPAFPN', 'FasterNetStage', 'PartialConv', 'PartialConvPointwise',
    'partial_conv_layer', 'register_conv_layers', 'register_downstream'
]

# Downstream libraries whose MODELS registry gets the plain names too.
DOWNSTREAM_REGISTRIES = ('mmdet.registry', 'mmseg.registry')
# The modules registered there under their class names.
DOWNSTREAM_MODELS = (FasterNet, PartialConv, FasterNetBlock,
                     FasterNetCSPLayer, FasterNetPAFPN)


def register_downstream() -> list:
    """Register FasterNet and its building blocks (``DOWNSTREAM_MODELS``)
    in each installed downstream MODELS registry.

    Returns the names of the registries it was added to. A library that is
    not installed is skipped: ``import fasternet_mm`` works with only one of
    mmdet or mmseg.
    """
    registered = []
    for name in DOWNSTREAM_REGISTRIES:
        try:
            registry = importlib.import_module(name).MODELS
        except ImportError:
            continue
        for module in DOWNSTREAM_MODELS:
            if registry.module_dict.get(module.__name__) is not module:
                registry.register_module(
                    module.__name__, module=module, force=True)
        registered.append(name)
    return registered
