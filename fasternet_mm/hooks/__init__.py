"""Hooks, one per module as MMEngine keeps them: exact resumption of
interrupted training (:class:`RandomStateHook`), checkpoints that a kill
cannot damage and that a plain ``torch.load`` reads
(:class:`AtomicCheckpointHook`), testing in the deploy form and/or bf16
(:class:`InferenceFormHook`) and bf16 training on a CPU
(:class:`Bf16TrainingHook`)."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .bf16_training_hook import Bf16TrainingHook
from .inference_form_hook import InferenceFormHook
from .random_state_hook import (RandomStateHook, check_random_states,
                                current_random_states, loaded_checkpoint_name,
                                restore_random_states)

__all__ = [
    'AtomicCheckpointHook', 'Bf16TrainingHook', 'InferenceFormHook',
    'RandomStateHook', 'check_random_states', 'current_random_states',
    'loaded_checkpoint_name', 'restore_random_states'
]
