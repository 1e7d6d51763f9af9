"""Checkpoints that a kill cannot damage and that a plain ``torch.load``
reads."""
import os
import os.path as osp
from typing import List

import mmengine
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from ..checkpoint import restore_checkpoint, to_weights_only_form
from ..errors import PreflightError
from ..registry import HOOKS
from .random_state_hook import loaded_checkpoint_name

# The MMEngine releases (from, up to but not including) whose private
# CheckpointHook._save_checkpoint_with_step this hook replaces, as tested.
TESTED_MMENGINE = ((0, 10), (0, 11))


def check_mmengine_version(version: str = mmengine.__version__) -> None:
    """Refuse, in one line, an MMEngine outside :data:`TESTED_MMENGINE`."""
    low, high = TESTED_MMENGINE
    try:
        release = tuple(int(part) for part in version.split('.')[:2])
    except ValueError:
        release = None
    if release is None or not low <= release < high or not hasattr(
            CheckpointHook, '_save_checkpoint_with_step'):
        raise PreflightError(
            f'AtomicCheckpointHook replaces a private method of MMEngine\'s '
            f'CheckpointHook and is tested with MMEngine '
            f'{low[0]}.{low[1]}.x; this is MMEngine {version}: install '
            f'mmengine>={low[0]}.{low[1]},<{high[0]}.{high[1]} or use '
            f"MMEngine's own CheckpointHook")


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook``, safe against a kill while it saves,
    writing files that a plain ``torch.load`` reads.

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

    torch >= 2.6 loads weights-only by default and refuses the message
    hub's ``HistoryBuffer`` and numpy values that MMEngine 0.10 pickles, so
    mmdet's and mmseg's own tools, their inferencers and ``torch.load``
    could not read MMEngine's checkpoints. This hook writes those objects
    in plain types (:func:`~fasternet_mm.checkpoint.to_weights_only_form`)
    and turns them back when a Runner loads the file.

    Use it in a config with ``default_hooks = dict(checkpoint=dict(
    type='fasternet_mm.AtomicCheckpointHook', interval=1))``. It
    overrides MMEngine's private ``_save_checkpoint_with_step`` and so
    refuses MMEngine releases other than those it is tested with
    (:data:`TESTED_MMENGINE`).
    """

    def __init__(self, *args, **kwargs) -> None:
        check_mmengine_version()
        super().__init__(*args, **kwargs)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Runs after the hooks that add to the checkpoint (priority
        ``VERY_LOW``, after ``RandomStateHook`` and ``EMAHook``)."""
        checkpoint.update(to_weights_only_form(checkpoint))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """``Runner.resume`` restores its message hub after this hook.

        It also runs ``meta['config']`` as a Python config file, to compare
        GPU counts: a checkpoint would run code on ``--resume``. The text
        is dropped; the configs of these tools have no ``gpu_ids``."""
        checkpoint.update(
            restore_checkpoint(checkpoint, loaded_checkpoint_name(runner)))
        meta = checkpoint.get('meta')
        if isinstance(meta, dict) and 'config' in meta:
            checkpoint['meta'] = {
                key: value
                for key, value in meta.items() if key != 'config'
            }

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
