"""Hooks: exact resumption of interrupted training, checkpoints that a
kill cannot damage, and deploy-form testing."""
import os
import os.path as osp
import random
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS as MMENGINE_HOOKS

from .deploy import switch_to_deploy, use_bf16
from .registry import HOOKS


@MMENGINE_HOOKS.register_module()
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


@MMENGINE_HOOKS.register_module()
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


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook``, safe against a kill while it saves.

    MMEngine 0.10 writes a checkpoint in place, rewrites ``last_checkpoint``
    in place, and with ``max_keep_ckpts`` deletes the oldest checkpoint
    *before* writing the new one. A run killed during a save can then be
    left with a truncated newest file and, with ``max_keep_ckpts=1``, a
    ``last_checkpoint`` naming a file already deleted: nothing to resume
    from. This hook writes the checkpoint and ``last_checkpoint`` to
    temporary files renamed into place once complete, and deletes outdated
    checkpoints only after that, so ``--resume`` always finds the last
    complete checkpoint. Arguments are those of ``CheckpointHook``; storage
    other than local disk keeps MMEngine's own behaviour.

    Use it in a config with ``default_hooks = dict(checkpoint=dict(
    type='fasternet_mm.AtomicCheckpointHook', interval=1))``.
    """

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not isinstance(self.file_backend, LocalBackend):
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        outdated = self._forget_outdated(runner, step)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        # A kill before a rename leaves a '.partial' file and the last
        # complete checkpoint, never a half-written file under a real name.
        runner.save_checkpoint(
            self.out_dir,
            filename + '.partial',
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():  # only the main process writes
            return
        os.replace(self.last_ckpt + '.partial', self.last_ckpt)
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        with open(pointer + '.partial', 'w', encoding='utf-8') as f:
            f.write(self.last_ckpt)
        os.replace(pointer + '.partial', pointer)
        for path in outdated:
            if path != self.last_ckpt and osp.isfile(path):
                os.remove(path)

    def _forget_outdated(self, runner, step) -> List[str]:
        """Record ``step`` among the kept checkpoints; return the paths of
        those that now fall out of ``max_keep_ckpts``, for deletion once
        the new checkpoint is safely written."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids
                                        and self.keep_ckpt_ids[-1] == step):
            return []
        outdated = []
        while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:
            old = self.keep_ckpt_ids.popleft()
            outdated.append(
                osp.join(self.out_dir, self.filename_tmpl.format(old)))
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids',
                                       list(self.keep_ckpt_ids))
        return outdated if is_main_process() else []
