"""The allow-list that lets torch's weights-only loading read MMEngine's
checkpoints.

torch >= 2.6 unpickles with ``weights_only=True`` by default, and MMEngine
0.10 calls ``torch.load`` without saying otherwise. Its own checkpoints then
fail to load (``Unsupported global: GLOBAL
mmengine.logging.history_buffer.HistoryBuffer``), which breaks ``--resume``,
``load_from`` and ``load_checkpoint``. Rather than turning weights-only
loading off (which would let any checkpoint run code), we allow-list the few
plain-data classes that MMEngine's checkpoints contain, and only while the
loads that need them run: :func:`mmengine_checkpoints` is a ``with`` block
around our own loader and the Runner of ``tools/train.py`` and
``tools/test.py``. ``import fasternet_mm`` leaves torch's allow-list alone.
"""
import collections
import contextlib
import os
import pickle
import threading
from typing import Iterator

import torch

# Set to 0 to keep torch's allow-list untouched even inside
# mmengine_checkpoints(): MMEngine's own checkpoints then fail to resume or
# load on torch >= 2.6, as they do without this package.
OPT_OUT_VARIABLE = 'FASTERNET_MM_MMENGINE_ALLOWLIST'


def history_buffer_getattr(owner, name: str):
    """Stands in for ``builtins.getattr`` while unpickling.

    A ``HistoryBuffer`` pickles its table of statistics methods as
    ``getattr(HistoryBuffer, 'min')`` and so on. A free ``getattr`` would
    reach any attribute of any object (and from there ``eval``), so this one
    only hands out HistoryBuffer's own statistics methods.
    """
    from mmengine.logging import HistoryBuffer

    allowed = set(
        HistoryBuffer._statistics_methods) | {'min', 'max', 'mean', 'current'}
    if owner is not HistoryBuffer or name not in allowed:
        raise pickle.UnpicklingError(
            f'Refused getattr({owner!r}, {name!r}) while unpickling: only '
            f'the statistics methods of HistoryBuffer {sorted(allowed)} are '
            f'allowed')
    return getattr(owner, name)


def mmengine_checkpoint_globals() -> list:
    """Classes and functions that a Runner checkpoint pickles.

    All are plain data: MMEngine's log history buffer (with a restricted
    getattr for its methods table), numpy's array and scalar reconstruction,
    which the message hub uses for logged values, and the Counter that
    MultiStepLR keeps its milestones in.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer

    try:
        multiarray = np._core.multiarray  # numpy >= 2
    except AttributeError:
        multiarray = np.core.multiarray
    safe = [
        HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct,
        multiarray.scalar, collections.Counter,
        (history_buffer_getattr, 'builtins.getattr')
    ]
    # numpy >= 1.25 pickles each dtype through its own class.
    safe += [
        type(np.dtype(t))
        for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                  np.float16, np.float32, np.float64)
    ]
    # Checkpoints written under numpy 1.x name numpy.core.multiarray.
    safe += [(multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
             (multiarray.scalar, 'numpy.core.multiarray.scalar')]
    return safe


# The outermost mmengine_checkpoints() block's torch context and the depth.
_open = dict(context=None, depth=0)
_open_lock = threading.Lock()


@contextlib.contextmanager
def mmengine_checkpoints() -> Iterator[None]:
    """Inside the block, weights-only loading accepts MMEngine's checkpoint
    classes (:func:`mmengine_checkpoint_globals`); on leaving the outermost
    block, torch's allow-list is as it was. Blocks nest: our loader opens
    one inside the tools' (a Pretrained backbone loads before --resume),
    and torch's own ``safe_globals`` would end both at the inner exit.
    Does nothing where the environment variable
    ``FASTERNET_MM_MMENGINE_ALLOWLIST=0`` opts out, or on a torch without
    ``torch.serialization.safe_globals``.

    Example:
        >>> with mmengine_checkpoints():
        ...     runner.train()  # --resume reads MMEngine's checkpoints
    """
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None or os.environ.get(OPT_OUT_VARIABLE) == '0':
        yield
        return
    with _open_lock:
        if _open['depth'] == 0:
            _open['context'] = safe_globals(mmengine_checkpoint_globals())
            _open['context'].__enter__()
        _open['depth'] += 1
    try:
        yield
    finally:
        with _open_lock:
            _open['depth'] -= 1
            if _open['depth'] == 0:
                _open.pop('context').__exit__(None, None, None)
                _open['context'] = None


def allow_mmengine_checkpoints() -> bool:
    """Allow-list MMEngine's checkpoint classes for weights-only loading for
    the rest of the process; torch offers no way to undo it.

    For scripts that run a Runner without our tools (e.g. mmdet's own
    ``tools/train.py`` with ``custom_imports=['fasternet_mm']``); prefer
    :func:`mmengine_checkpoints` where a ``with`` block fits. Returns False
    on a torch without ``add_safe_globals``.
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return False
    add_safe_globals(mmengine_checkpoint_globals())
    return True
