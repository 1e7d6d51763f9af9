import importlib
import warnings

from .fasternet import (ConvDownsample, FasterNet, FasterNetBlock,
                        FasterNetStage, PartialConv)

__all__ = [
    'ConvDownsample', 'FasterNet', 'FasterNetBlock', 'FasterNetStage',
    'PartialConv', 'register_downstream'
]

# Downstream libraries whose MODELS registry gets the plain names too.
DOWNSTREAM_REGISTRIES = ('mmdet.registry', 'mmseg.registry')


def register_downstream() -> list:
    """Register FasterNet in each installed downstream MODELS registry.

    Returns the names of the registries it was added to. A library that is
    not installed is skipped: ``import fasternet_mm`` works with only one of
    mmdet or mmseg. A registry that already holds another package's
    ``FasterNet`` keeps it, with a warning: replacing it would silently
    break that package; ours stays reachable as ``fasternet_mm.FasterNet``.
    """
    registered = []
    for name in DOWNSTREAM_REGISTRIES:
        try:
            registry = importlib.import_module(name).MODELS
        except ImportError:
            continue
        present = registry.module_dict.get('FasterNet')
        if present is None:
            registry.register_module('FasterNet', module=FasterNet)
        elif present is not FasterNet:
            warnings.warn(
                f"{name}.MODELS already holds a 'FasterNet' from "
                f'{present.__module__}; fasternet_mm leaves it in place. Use '
                f"type='fasternet_mm.FasterNet' for this package's backbone.",
                stacklevel=2)
            continue
        registered.append(name)
    return registered
