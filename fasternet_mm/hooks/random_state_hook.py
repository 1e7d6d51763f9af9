"""Random number generator states saved in every checkpoint and restored
on ``--resume``."""
import logging
import random
import reprlib
from typing import Tuple

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from ..errors import CheckpointError
from ..registry import HOOKS


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
