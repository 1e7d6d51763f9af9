import warnings

from .roi_align import GatherRoIAlign

__all__ = ['GatherRoIAlign', 'register_roi_layers']


def register_roi_layers() -> None:
    """Expose our RoI layers where mmdet's RoI extractors look for
    ``roi_layer=dict(type=...)``: as attributes of ``mmcv.ops``."""
    try:
        import mmcv.ops
    except ImportError:  # mmcv without compiled ops: mmdet cannot run
        return
    present = getattr(mmcv.ops, 'GatherRoIAlign', None)
    if present is not None and present is not GatherRoIAlign:
        warnings.warn(
            f'mmcv.ops.GatherRoIAlign is already {present!r}; fasternet_mm '
            f'leaves it in place, so roi_layer=dict(type=\'GatherRoIAlign\') '
            f'builds that one', stacklevel=2)
        return
    mmcv.ops.GatherRoIAlign = GatherRoIAlign
