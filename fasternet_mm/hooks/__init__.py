"""Hooks, one per module as MMEngine keeps them: exact resumption of
interrupted training (:class:`RandomStateHook`), checkpoints that a kill
cannot damage and that a plain ``torch.load`` reads
(:class:`AtomicCheckpointHook`), testing in the deploy form and/or under
mixed precision (:class:`InferenceFormHook`) and mixed-precision training
on a CPU (:class:`AmpTrainingHook`; ``Bf16TrainingHook`` is its deprecated
name)."""
from .amp_training_hook import AmpTrainingHook
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .bf16_training_hook import Bf16TrainingHook
from .inference_form_hook import InferenceFormHook
from .random_state_hook import (RandomStateHook, check_random_states,
                                current_random_states, loaded_checkpoint_name,
                                restore_random_states)

__all__ = [
    'AmpTrainingHook', 'AtomicCheckpointHook', 'Bf16TrainingHook',
    'InferenceFormHook', 'RandomStateHook', 'check_random_states',
    'current_random_states', 'loaded_checkpoint_name', 'restore_random_states'
]
