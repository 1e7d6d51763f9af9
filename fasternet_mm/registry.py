"""Registries of fasternet_mm.

``MODELS`` is a child of MMEngine's root model registry under the scope
``fasternet_mm``, so ``type='fasternet_mm.FasterNet'`` resolves from any
downstream registry (mmdet, mmseg, mmpretrain).  For the plain
``type='FasterNet'``, :func:`fasternet_mm.models.register_downstream` also
registers the backbone in the registries of mmdet and mmseg, when installed.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='fasternet_mm',
    locations=['fasternet_mm.models'])
