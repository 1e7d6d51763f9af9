"""Hooks: exact resumption of interrupted training, checkpoints that a
kill cannot damage and that a plain ``torch.load`` reads, and testing in
the deploy form and/or bf16."""
import logging
import os
import os.path as osp
import random
import reprlib
from typing import List, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import (all_gather_object, get_dist_info, get_world_size,
                           is_main_process)
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from .checkpoint import restore_checkpoint, to_weights_only_form
from .deploy import switch_to_deploy
from .errors import CheckpointError
from .precision import use_fp32, use_low_precision
from .registry import HOOKS


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random number generators' states in every checkpoint and
    restore them on ``--resume``: torch's CPU and CUDA generators, numpy's
    and Python's, for every process.

    MMEngine re-seeds at start-up, so without this a resumed run draws other
    random flips, crops and sampled RoIs than the uninterrupted run would
    have. With it (and ``randomness=dict(seed=..., deterministic=True)``), a
    run killed and resumed ends with the same weights. Under distributed
    training each rank gets its own states back, so ranks seeded apart
    (``diff_rank_seed``) do not share one stream after a resume. Data-loader
    workers are seeded per worker by MMEngine and are not covered: use
    ``num_workers=0`` where bit-exact resumption matters.

    Use it as ``default_hooks = dict(random_states=dict(
    type='fasternet_mm.RandomStateHook'))``: a child config's
    ``custom_hooks`` then cannot drop it.
    """

    # Before CheckpointHook ('VERY_LOW'), so that the ranks' states are
    # gathered by the time the main process writes the checkpoint.
    priority = 'LOW'
    key = 'random_states'

    def __init__(self) -> None:
        self._gathered = None  # ((epoch, iter), {rank: states})
        self._to_restore = None  # this rank's states, from --resume

    def after_train_iter(self, runner, *args, **kwargs) -> None:
        self._gather_if_saving(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_saving(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        rank, world_size = get_dist_info()
        now = (runner.epoch, runner.iter)
        if self._gathered and self._gathered[0] == now:
            ranks = self._gathered[1]
        else:  # one process, or a save no rank gathered for
            ranks = {rank: current_random_states()}
        checkpoint[self.key] = dict(world_size=world_size, ranks=ranks)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep this rank's states; ``before_train`` applies them, because
        ``Runner.resume`` re-seeds after this hook whenever the config's
        seed differs from the checkpoint's (always with ``seed=None``)."""
        if not isinstance(checkpoint, dict):
            return  # AtomicCheckpointHook refuses it
        saved = checkpoint.get(self.key)
        empty = saved is None or (isinstance(saved, dict) and not saved)
        if empty or not runner._resume:
            return
        rank, world_size = get_dist_info()
        saved_world_size, ranks = _saved_random_states(
            saved, loaded_checkpoint_name(runner))
        states = ranks.get(rank)
        if saved_world_size != world_size or states is None:
            runner.logger.warning(
                f'The checkpoint holds random states for ranks '
                f'{sorted(ranks)} of {saved_world_size} processes; this is '
                f'rank {rank} of {world_size}, which keeps its fresh seed: '
                f'the resumed run will not repeat the uninterrupted one '
                f'exactly.')
            return
        self._to_restore = states

    def before_train(self, runner) -> None:
        if self._to_restore is not None:
            restore_random_states(self._to_restore)
            self._to_restore = None

    def _gather_if_saving(self, runner, by_epoch: bool) -> None:
        """Under DDP only the main process writes checkpoints: gather every
        rank's states there, on all ranks, when a save is due now."""
        if get_world_size() == 1 or not _checkpoint_due(runner, by_epoch):
            return
        states = all_gather_object(current_random_states())
        self._gathered = ((runner.epoch, runner.iter), dict(enumerate(states)))


def _checkpoint_due(runner, by_epoch: bool) -> bool:
    """Whether a CheckpointHook of the runner saves at this point, by its
    own interval rules."""
    for hook in runner.hooks:
        if not isinstance(hook, CheckpointHook) or hook.by_epoch != by_epoch:
            continue
        if by_epoch:
            due = hook.every_n_epochs(runner, hook.interval, hook.save_begin)
            last = hook.is_last_train_epoch(runner)
        else:
            due = hook.every_n_train_iters(runner, hook.interval,
                                           hook.save_begin)
            last = hook.is_last_train_iter(runner)
        if due or (hook.save_last and last):
            return True
    return False


def loaded_checkpoint_name(runner) -> str:
    """The file a Runner is loading, for error messages: its ``load_from``,
    or the latest checkpoint of the work dir that ``--resume`` without a
    path takes."""
    path = getattr(runner, '_load_from', None)
    if path is None and getattr(runner, '_resume', False):
        from mmengine.runner import find_latest_checkpoint
        path = find_latest_checkpoint(runner.work_dir)
    return str(path) if path else 'loaded by the Runner'


def _saved_random_states(saved, path: str) -> Tuple[int, dict]:
    """The world size and the states by rank of what
    :meth:`RandomStateHook.before_save_checkpoint` wrote, each rank's states
    tried on fresh generators first: a damaged or crafted entry raises
    :class:`CheckpointError` instead of failing in the middle of a resume."""
    refused = f'Cannot resume from the checkpoint {path}: its random states'
    if not isinstance(saved, dict):
        raise CheckpointError(f'{refused} are a {type(saved).__name__}, '
                              f'not a dict')
    if 'ranks' not in saved:  # written before states were per rank
        saved = dict(world_size=1, ranks={0: saved})
    world_size, ranks = saved.get('world_size'), saved['ranks']
    if type(world_size) is not int or world_size < 1 or not isinstance(
            ranks, dict) or not all(type(rank) is int for rank in ranks):
        raise CheckpointError(
            f'{refused} need a positive int world_size and a dict of ranks '
            f'by int, got world_size={reprlib.repr(world_size)} and ranks '
            f'of type {type(ranks).__name__}')
    for rank, states in ranks.items():
        try:
            check_random_states(states)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError,
                RuntimeError, OverflowError) as err:
            raise CheckpointError(
                f'{refused} for rank {rank} are damaged: {type(err).__name__}'
                f': {str(err).splitlines()[0][:200] if str(err) else ""}'
            ) from None
    return world_size, ranks


def check_random_states(states: dict) -> None:
    """Raise unless ``states`` is what :func:`current_random_states`
    returns: each state is set on a throwaway generator."""
    if not isinstance(states, dict):
        raise TypeError(f'a dict of states, got {type(states).__name__}')
    torch.Generator().set_state(states['torch'])
    name, keys, *rest = states['numpy']
    if not torch.is_tensor(keys):
        raise TypeError(f'the numpy keys must be a tensor, got '
                        f'{type(keys).__name__}')
    np.random.RandomState().set_state(
        (name, keys.numpy().astype(np.uint32), *rest))
    random.Random().setstate(states['python'])
    cuda = states.get('cuda')
    if cuda is not None and not (isinstance(cuda, (list, tuple)) and all(
            torch.is_tensor(state) and state.dtype == torch.uint8
            for state in cuda)):
        raise TypeError('the CUDA states must be a list of uint8 tensors')


def current_random_states() -> dict:
    """This process's generator states, as plain picklable data."""
    name, keys, *rest = np.random.get_state()
    states = dict(
        torch=torch.get_rng_state(),
        # int64: a uint32 tensor does not survive all_gather_object's pickle
        numpy=(name, torch.from_numpy(keys.astype(np.int64)), *rest),
        python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict) -> None:
    """Undo :func:`current_random_states`."""
    torch.set_rng_state(states['torch'])
    name, keys, *rest = states['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(states['python'])
    cuda = states.get('cuda')
    if cuda is None or not torch.cuda.is_available():
        return
    if len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    else:
        print_log(
            f'The checkpoint holds the random states of {len(cuda)} CUDA '
            f'devices and this process sees {torch.cuda.device_count()}: '
            f'the CUDA generators keep their fresh seeds.',
            logger='current',
            level=logging.WARNING)


@HOOKS.register_module()
class InferenceFormHook(Hook):
    """Before testing, put the model in the form it is to infer in: its
    deploy form and/or bf16 (``tools/test.py --deploy/--bf16``).

    Args:
        deploy (bool): Fold BN into convs and swap mmcv's RoIAlign for
            GatherRoIAlign (``fasternet_mm.switch_to_deploy``).
        bf16 (str, optional): ``'all'`` runs the backbone, neck and heads
            under bf16 autocast (``fasternet_mm.use_low_precision``),
            ``'backbone'`` the backbone only; None keeps fp32.
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
        model = _unwrap(runner.model)
        if self.deploy:
            switch_to_deploy(model)
        if self.bf16 == 'all':
            use_low_precision(model)
        elif self.bf16 == 'backbone':
            use_low_precision(model, ['backbone'])


@HOOKS.register_module()
class Bf16TrainingHook(Hook):
    """Mixed-precision training on a CPU (``tools/train.py --amp``): the
    backbone, neck and heads run under bf16 autocast, while their predictor
    layers, the losses, RoIAlign, NMS and the other box and mask
    post-processing stay fp32 (:func:`fasternet_mm.use_low_precision`). The
    weights and the optimizer stay fp32. bf16 has fp32's exponent range, so
    no loss scaler is needed. Validation inside training runs in fp32.

    MMEngine's ``AmpOptimWrapper`` runs on CUDA, NPU, MLU and MUSA only; on
    those, ``--amp`` keeps it (fp16 with a dynamic loss scale).
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.training = False

    def before_train(self, runner) -> None:
        self.training = True
        parts = use_low_precision(_unwrap(runner.model))
        runner.logger.info(f'--amp: training {parts} under bf16 autocast; '
                           f'predictor layers, losses and post-processing '
                           f'in fp32')

    def before_val(self, runner) -> None:
        use_fp32(_unwrap(runner.model))

    def after_val(self, runner) -> None:
        if self.training:
            use_low_precision(_unwrap(runner.model))

    def after_train(self, runner) -> None:
        self.training = False
        use_fp32(_unwrap(runner.model))


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


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
    type='fasternet_mm.AtomicCheckpointHook', interval=1))``.
    """

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
