"""Deprecated: the old name of :mod:`fasternet_mm.model_utils`, which this
module re-exports. It builds no registry's modules, as its name suggested."""
import warnings

from .model_utils import build_model, dummy_sample

warnings.warn(
    'fasternet_mm.builder is deprecated; import build_model and '
    'dummy_sample from fasternet_mm.model_utils',
    DeprecationWarning,
    stacklevel=2)

__all__ = ['build_model', 'dummy_sample']
