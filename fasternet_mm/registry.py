"""Registries of fasternet_mm, and every registration it makes outside them.

``MODELS``, ``HOOKS`` and ``MODEL_WRAPPERS`` are children of MMEngine's root
registries under the scope ``fasternet_mm``, so ``type='fasternet_mm.X'``
resolves from any downstream registry (mmdet, mmseg, mmpretrain). Entries
come only from ``@MODELS.register_module()`` (and the like) on a class, or
on the ``'PConv'`` builder function; nothing else in the package registers
anything, except this module.

:func:`register_all_modules`, which ``import fasternet_mm`` calls once, then
exposes our models under their plain names where other packages look them
up. What goes where is derived from the ``fasternet_mm`` scope, not listed
by hand:

- every class in :data:`MODELS` goes into the ``MODELS`` registry of mmdet
  and mmseg, whichever are installed (:func:`register_downstream`), so
  ``type='FasterNet'`` builds there;
- every function in :data:`MODELS` is a conv-layer builder
  (``'PConv'``) and goes into MMEngine's root ``MODELS``, where mmcv's
  ``build_conv_layer`` finds it from any scope (:func:`register_conv_layers`);
- :class:`~fasternet_mm.ops.GatherRoIAlign` becomes an attribute of
  ``mmcv.ops``, where mmdet's RoI extractors look up their ``roi_layer``
  type (:func:`register_roi_layers`).

A name another package already holds in any of those places is left to it,
with a warning; ours stays reachable as ``fasternet_mm.<name>``.
"""
import importlib
import inspect
import warnings
from typing import List

from mmengine.logging import MMLogger
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='fasternet_mm',
    locations=['fasternet_mm.models'])

# Our hooks live under the ``fasternet_mm`` scope only (``type=
# 'fasternet_mm.AtomicCheckpointHook'``), so their generic names never
# shadow or clash with another package's hooks.
HOOKS = Registry(
    'hook',
    parent=MMENGINE_HOOKS,
    scope='fasternet_mm',
    locations=['fasternet_mm.hooks'])

# The Runner looks its ``model_wrapper_cfg`` type up in MMEngine's root
# MODEL_WRAPPERS, which reaches this child by the scoped name
# (``type='fasternet_mm.CPUDistributedDataParallel'``); MMEngine's
# ``is_model_wrapper`` searches child registries too.
MODEL_WRAPPERS = Registry(
    'model_wrapper',
    parent=MMENGINE_MODEL_WRAPPERS,
    scope='fasternet_mm',
    locations=['fasternet_mm.distributed'])

# Downstream libraries whose MODELS registry gets the plain names too.
DOWNSTREAM_REGISTRIES = ('mmdet.registry', 'mmseg.registry')


def _registered(kind: str) -> dict:
    """Name to object of every class (``kind='class'``) or function
    (``kind='function'``) in our MODELS registry, all model modules
    imported first."""
    MODELS.import_from_location()
    test = inspect.isclass if kind == 'class' else inspect.isfunction
    return {
        name: obj
        for name, obj in MODELS.module_dict.items() if test(obj)
    }


def register_downstream() -> List[str]:
    """Register every class of our MODELS registry (FasterNet and its
    building blocks) in each installed downstream MODELS registry, under
    the name it has in ours.

    Returns the names of the registries it was added to. A library that is
    not installed is skipped: ``import fasternet_mm`` works with only one of
    mmdet or mmseg. A registry that already holds another package's class
    under one of these names keeps it, with a warning: replacing it would
    silently break that package; ours stays reachable as
    ``fasternet_mm.<name>``.
    """
    models = _registered('class')
    registered = []
    for name in DOWNSTREAM_REGISTRIES:
        try:
            registry = importlib.import_module(name).MODELS
        except ImportError:
            continue
        for model_name, module in models.items():
            present = registry.module_dict.get(model_name)
            if present is None:
                registry.register_module(model_name, module=module)
            elif present is not module:
                warnings.warn(
                    f'{name}.MODELS already holds a {model_name!r} from '
                    f'{present.__module__}; fasternet_mm leaves it in place. '
                    f"Use type='fasternet_mm.{model_name}' for this "
                    f"package's one.",
                    stacklevel=2)
        registered.append(name)
    return registered


def register_conv_layers() -> bool:
    """Make ``conv_cfg=dict(type='PConv')`` resolve from every scope, by
    registering each conv-layer builder of our MODELS registry in MMEngine's
    root registry, where mmcv registers its own conv layers. A ``'PConv'``
    there from another package is kept, with a warning;
    ``type='fasternet_mm.PConv'`` then names ours.

    Returns:
        bool: Whether the plain names (``'PConv'``) build our layers.
    """
    plain = True
    for name, builder in _registered('function').items():
        current = MMENGINE_MODELS.module_dict.get(name)
        if current is builder:
            continue
        if current is not None:
            MMLogger.get_current_instance().warning(
                f"MMEngine's MODELS registry already has {name!r} "
                f'({current.__module__}.{current.__qualname__}); fasternet_mm '
                f'leaves it in place. Use conv_cfg=dict(type='
                f"'fasternet_mm.{name}') for FasterNet's {name}")
            plain = False
            continue
        MMENGINE_MODELS.register_module(name, module=builder)
    return plain


def register_roi_layers() -> None:
    """Expose our RoI layers where mmdet's RoI extractors look for
    ``roi_layer=dict(type=...)``: as attributes of ``mmcv.ops``."""
    try:
        import mmcv.ops
    except ImportError:  # mmcv without compiled ops: mmdet cannot run
        return
    from .ops import GatherRoIAlign
    present = getattr(mmcv.ops, 'GatherRoIAlign', None)
    if present is not None and present is not GatherRoIAlign:
        warnings.warn(
            f'mmcv.ops.GatherRoIAlign is already {present!r}; fasternet_mm '
            f'leaves it in place, so roi_layer=dict(type=\'GatherRoIAlign\') '
            f'builds that one', stacklevel=2)
        return
    mmcv.ops.GatherRoIAlign = GatherRoIAlign


def register_all_modules() -> None:
    """Make every registration of fasternet_mm outside its own registries
    (see the module docstring). ``import fasternet_mm`` calls it; calling it
    again changes nothing. Unlike mmdet's function of the same name, it
    leaves the default scope alone."""
    register_downstream()
    register_roi_layers()
    register_conv_layers()
