"""Fixes that make today's torch and the OpenMMLab 2.x stack work together.

torch >= 2.6 unpickles with ``weights_only=True`` by default, and MMEngine
0.10 calls ``torch.load`` without saying otherwise. Its own checkpoints then
fail to load (``Unsupported global: GLOBAL
mmengine.logging.history_buffer.HistoryBuffer``), which breaks ``--resume``,
``load_from`` and ``load_checkpoint``. Rather than turning weights-only
loading off (which would let any checkpoint run code), we allow-list the few
plain-data classes that MMEngine's checkpoints contain.
"""
import collections
import pickle

import torch


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


def allow_mmengine_checkpoints() -> bool:
    """Allow-list MMEngine's checkpoint classes for weights-only loading.

    Returns False on a torch without ``add_safe_globals`` (< 2.4), where
    ``torch.load`` does not default to weights-only anyway.
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return False
    add_safe_globals(mmengine_checkpoint_globals())
    return True
