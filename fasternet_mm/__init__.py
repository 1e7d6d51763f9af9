"""FasterNet backbones for MMDetection 3 and MMSegmentation 1.

``import fasternet_mm`` (or ``custom_imports=dict(imports=['fasternet_mm'])``
in a config) registers :class:`FasterNet` as ``'FasterNet'`` in the model
registries of mmdet and mmseg, whichever are installed, and as
``'fasternet_mm.FasterNet'`` everywhere.
"""
from .compat import allow_mmengine_checkpoints
from .models import FasterNet, PartialConv, register_downstream
from .version import __version__

allow_mmengine_checkpoints()
register_downstream()

__all__ = ['FasterNet', 'PartialConv', 'register_downstream', '__version__']
