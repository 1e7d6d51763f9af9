import importlib

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
    mmdet or mmseg.
    """
    registered = []
    for name in DOWNSTREAM_REGISTRIES:
        try:
            registry = importlib.import_module(name).MODELS
        except ImportError:
            continue
        if registry.module_dict.get('FasterNet') is not FasterNet:
            registry.register_module('FasterNet', module=FasterNet, force=True)
        registered.append(name)
    return registered
