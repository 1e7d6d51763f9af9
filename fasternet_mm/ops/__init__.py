from .roi_align import GatherRoIAlign

__all__ = ['GatherRoIAlign', 'register_roi_layers']


def register_roi_layers() -> None:
    """Expose our RoI layers where mmdet's RoI extractors look for
    ``roi_layer=dict(type=...)``: as attributes of ``mmcv.ops``."""
    try:
        import mmcv.ops
    except ImportError:  # mmcv without compiled ops: mmdet cannot run
        return
    mmcv.ops.GatherRoIAlign = GatherRoIAlign
