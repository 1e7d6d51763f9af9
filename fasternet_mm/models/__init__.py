import importlib
import warnings

from .csp_layers import FasterNetCSPLayer, PConvNeXtBlock
from .fasternet import (ConvDownsample, FasterNet, FasterNetBlock,
                        FasterNetStage, PartialConv)
from .necks import FasterNetPAFPN
from .pconv_layers import (PartialConvPointwise, partial_conv_layer,
                           register_conv_layers)

__all__ = [
    'ConvDownsample', 'FasterNet', 'FasterNetBlock', 'FasterNetCSPLayer',
    'FasterNetPAFPN', 'FasterNetStage', 'PConvNeXtBlock', 'PartialConv',
    'PartialConvPointwise',
    'partial_conv_layer', 'register_conv_layers', 'register_downstream'
]

# Downstream libraries whose MODELS registry gets the plain names too.
DOWNSTREAM_REGISTRIES = ('mmdet.registry', 'mmseg.registry')
# The modules registered there under their class names.
DOWNSTREAM_MODELS = (FasterNet, PartialConv, FasterNetBlock,
                     FasterNetCSPLayer, FasterNetPAFPN, PConvNeXtBlock)


def register_downstream() -> list:
    """Register FasterNet and its building blocks (``DOWNSTREAM_MODELS``)
    in each installed downstream MODELS registry.

    Returns the names of the registries it was added to. A library that is
    not installed is skipped: ``import fasternet_mm`` works with only one of
    mmdet or mmseg. A registry that already holds another package's class
    under one of these names keeps it, with a warning: replacing it would
    silently break that package; ours stays reachable as
    ``fasternet_mm.<name>``.
    """
    registered = []
    for name in DOWNSTREAM_REGISTRIES:
        try:
            registry = importlib.import_module(name).MODELS
        except ImportError:
            continue
        for module in DOWNSTREAM_MODELS:
            present = registry.module_dict.get(module.__name__)
            if present is None:
                registry.register_module(module.__name__, module=module)
            elif present is not module:
                warnings.warn(
                    f'{name}.MODELS already holds a {module.__name__!r} from '
                    f'{present.__module__}; fasternet_mm leaves it in place. '
                    f"Use type='fasternet_mm.{module.__name__}' for this "
                    f"package's one.",
                    stacklevel=2)
        registered.append(name)
    return registered
