"""Hooks: exact resumption of interrupted training, and deploy-form
testing."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from .deploy import switch_to_deploy, use_bf16


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random number generators' states in every checkpoint and
    restore them on ``--resume``.

    MMEngine re-seeds at start-up, so without this a resumed run draws other
    random flips, crops and sampled RoIs than the uninterrupted run would
    have. With it (and ``randomness=dict(seed=..., deterministic=True)``), a
    run killed and resumed ends with the same weights. Data-loader workers
    are seeded per worker by MMEngine and are not covered: use
    ``num_workers=0`` where bit-exact resumption matters.
    """

    priority = 'VERY_LOW'
    key = 'random_states'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        numpy_state = np.random.get_state()
        checkpoint[self.key] = dict(
            torch=torch.get_rng_state(),
            numpy=(numpy_state[0], torch.from_numpy(numpy_state[1].copy()),
                   *numpy_state[2:]),
            python=random.getstate())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get(self.key)
        if not states or not runner._resume:
            return
        torch.set_rng_state(states['torch'])
        name, keys, *rest = states['numpy']
        np.random.set_state((name, keys.numpy(), *rest))
        random.setstate(states['python'])


@HOOKS.register_module()
class DeployHook(Hook):
    """Before testing, switch the model to its deploy form and/or run it in
    bf16 (``tools/test.py --deploy/--bf16``).

    Args:
        deploy (bool): Fold BN into convs and swap mmcv's RoIAlign for
            GatherRoIAlign (``fasternet_mm.switch_to_deploy``).
        bf16 (str, optional): ``'all'`` runs the backbone, neck and heads
            under bf16 autocast (``fasternet_mm.use_bf16``), ``'backbone'``
            the backbone only; None keeps fp32.
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 deploy: bool = True,
                 bf16: Optional[str] = None) -> None:
        if bf16 not in (None, 'all', 'backbone'):
            raise ValueError(
                f"bf16 must be None, 'all' or 'backbone', got {bf16!r}")
        self.deploy = deploy
        self.bf16 = bf16

    def before_test(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if self.deploy:
            switch_to_deploy(model)
        if self.bf16 == 'all':
            use_bf16(model)
        elif self.bf16 == 'backbone':
            use_bf16(model, ['backbone'])
