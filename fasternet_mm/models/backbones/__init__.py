from .fasternet import ConvDownsample, FasterNet, FasterNetStage

__all__ = ['ConvDownsample', 'FasterNet', 'FasterNetStage']
