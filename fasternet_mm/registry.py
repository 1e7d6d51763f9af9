"""Registries of fasternet_mm.

``MODELS`` is a child of MMEngine's root model registry under the scope
``fasternet_mm``, so ``type='fasternet_mm.FasterNet'`` resolves from any
downstream registry (mmdet, mmseg, mmpretrain).  For the plain
``type='FasterNet'``, :func:`fasternet_mm.models.register_downstream` also
registers the backbone in the registries of mmdet and mmseg, when installed.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
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
