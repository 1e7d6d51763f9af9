"""Deprecated: the old name of :class:`AmpTrainingHook`, kept so that
configs naming ``fasternet_mm.Bf16TrainingHook`` still build."""
from ..deprecation import deprecated_name
from ..registry import HOOKS
from .amp_training_hook import AmpTrainingHook


@HOOKS.register_module()
class Bf16TrainingHook(AmpTrainingHook):
    """Deprecated name of :class:`AmpTrainingHook`."""

    def __init__(self) -> None:
        deprecated_name('Bf16TrainingHook', 'AmpTrainingHook', FutureWarning)
        super().__init__()
