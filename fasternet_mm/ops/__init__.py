from .roi_align import GatherRoIAlign

__all__ = ['GatherRoIAlign']
