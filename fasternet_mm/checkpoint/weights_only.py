"""The weights-only form of whole training checkpoints.

Whole training checkpoints are written in a weights-only form
(:func:`to_weights_only_form`): MMEngine's ``HistoryBuffer`` and numpy values
become tagged plain dicts, so a plain ``torch.load(path)`` reads them on
torch >= 2.6, and :func:`from_weights_only_form` turns them back.

Both walk a checkpoint that may come from anywhere, so the walk is bounded:
containers nested deeper than :data:`MAX_DEPTH` are refused, and the label
that names a bad value (``checkpoint['meta']['mean']``) is only built when
an error needs it.
"""
import copy
import reprlib
from collections import Counter, OrderedDict
from os import PathLike
from typing import Any, Callable, Dict, List, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from ..errors import CheckpointError
from .reading import read_checkpoint, save_whole

# The key of the plain dicts that stand for objects torch's weights-only
# unpickler refuses, and the fields each form has.
TYPE_KEY = '__fasternet_mm_type__'
_FORMS = {
    'mmengine.HistoryBuffer': ('log_history', 'count_history', 'max_length'),
    'numpy.ndarray': ('dtype', 'data'),
    'numpy.scalar': ('dtype', 'value'),
}
# What torch.load(weights_only=True) rebuilds by itself since torch 2.6,
# besides tensors and the containers below.
_PLAIN_TYPES = (type(None), bool, int, float, str, bytes, bytearray,
                torch.dtype, torch.device, torch.Size)
_MAPPINGS = (dict, OrderedDict, Counter)
_SEQUENCES = (list, tuple)
# How deep dicts, lists and tuples may nest in a checkpoint. MMEngine's
# training checkpoints nest 6 deep; the limit keeps every walk far from
# Python's recursion limit, whoever calls it.
MAX_DEPTH = 64

# Keys in error messages: a key may be any length, or a nested tuple.
_KEY_REPR = reprlib.Repr()
_KEY_REPR.maxstring = _KEY_REPR.maxother = _KEY_REPR.maxlong = 40
_KEY_REPR.maxlevel = 3
# Levels named at each end of a long location.
_SHOWN_LEVELS = 4


def _location(root: str, trail: List) -> str:
    """``root`` followed by the keys in ``trail``: ``checkpoint['meta'][0]``;
    a long trail keeps its first and last levels."""
    steps = [f'[{_KEY_REPR.repr(key)}]' for key in trail]
    if len(steps) > 2 * _SHOWN_LEVELS + 1:
        hidden = len(steps) - 2 * _SHOWN_LEVELS
        steps = steps[:_SHOWN_LEVELS] + [f'...{hidden} levels...'] + \
            steps[-_SHOWN_LEVELS:]
    return root + ''.join(steps)


def _too_deep(root: str, trail: List) -> str:
    return (f'{_location(root, trail)} nests dicts, lists or tuples more '
            f'than {MAX_DEPTH} deep, the limit for a checkpoint (MMEngine '
            f"writes 6); the file is damaged or crafted")


def to_weights_only_form(value: Any, where: str = 'checkpoint') -> Any:
    """``value`` (a checkpoint or any part of one) in types that a plain
    ``torch.load`` rebuilds under torch's weights-only default, with no
    allow-list: tensors, dicts, lists, tuples, strings, numbers and None.

    MMEngine's ``HistoryBuffer`` (the message hub's logged values) and numpy
    arrays and scalars become plain dicts tagged with :data:`TYPE_KEY`, of
    tensors and numbers; :func:`from_weights_only_form` turns them back.
    Parts that need no change are returned as they are, not copied, so a
    second conversion changes nothing.

    Args:
        value: What to convert.
        where: How errors name ``value``.

    Raises:
        TypeError: naming the key of an object that has no such form.
        ValueError: if containers nest deeper than :data:`MAX_DEPTH`.
    """
    return _to_form(value, where, [])


def _to_form(value: Any, root: str, trail: List) -> Any:
    if type(value) in _PLAIN_TYPES or torch.is_tensor(value):
        return value
    if type(value) is HistoryBuffer:
        log_history, count_history = value.data
        return {
            TYPE_KEY: 'mmengine.HistoryBuffer',
            'log_history': _array_to_tensor(log_history, root, trail),
            'count_history': _array_to_tensor(count_history, root, trail),
            'max_length': value.max_length
        }
    if type(value) is np.ndarray:
        return {
            TYPE_KEY: 'numpy.ndarray',
            'dtype': value.dtype.str,
            'data': _array_to_tensor(value, root, trail)
        }
    if isinstance(value, np.generic) and value.dtype.kind in 'biuf':
        return {
            TYPE_KEY: 'numpy.scalar',
            'dtype': value.dtype.str,
            'value': value.item()
        }
    if type(value) in _MAPPINGS + _SEQUENCES + (set, ):
        if len(trail) >= MAX_DEPTH:
            raise ValueError(_too_deep(root, trail))
        if isinstance(value, set):
            for item in value:
                if not _is_plain_key(item):
                    raise TypeError(
                        f'{_location(root, trail)} is a set holding a '
                        f'{_type_name(item)}; make it a list')
            return value
        if isinstance(value, dict):
            for key in value:
                if not _is_plain_key(key):
                    raise TypeError(f'{_location(root, trail)} has a key of '
                                    f'type {_type_name(key)}: '
                                    f'{_KEY_REPR.repr(key)}')
        return _map_items(value, trail,
                          lambda item: _to_form(item, root, trail))
    raise TypeError(
        f'{_location(root, trail)} is a {_type_name(value)}, which '
        f'torch.load cannot read with weights_only=True and which has no '
        f'weights-only form; keep tensors, numbers, strings, None, numpy '
        f'values and dicts, lists and tuples of them in a checkpoint')


def _is_plain_key(key: Any, depth: int = 0) -> bool:
    """Whether a dict key or set item is kept as it is: a plain value or
    a tensor, or a tuple of them."""
    if type(key) in _PLAIN_TYPES or torch.is_tensor(key):
        return True
    return type(key) is tuple and depth < MAX_DEPTH and all(
        _is_plain_key(item, depth + 1) for item in key)


def from_weights_only_form(value: Any, where: str = 'checkpoint') -> Any:
    """Undo :func:`to_weights_only_form`: every tagged dict in ``value``
    becomes the ``HistoryBuffer``, numpy array or numpy scalar it stands
    for. Anything else passes through, so calling it on a checkpoint that
    was never converted, or twice, changes nothing.

    Raises:
        CheckpointError: naming the key of a tagged dict that is damaged or
            of an unknown form, or where containers nest deeper than
            :data:`MAX_DEPTH`.
    """
    return _from_form(value, where, [])


def _from_form(value: Any, root: str, trail: List) -> Any:
    if type(value) in (dict, OrderedDict) and TYPE_KEY in value:
        return _restore(value, root, trail)
    if type(value) in _MAPPINGS + _SEQUENCES:
        if len(trail) >= MAX_DEPTH:
            raise CheckpointError(_too_deep(root, trail))
        return _map_items(value, trail,
                          lambda item: _from_form(item, root, trail))
    return value


def _map_items(container, trail: List, convert: Callable[[Any], Any]):
    """``convert`` applied to the items of a dict, list or tuple, each with
    its key on ``trail``; the container itself when no item changed. A
    changed dict is a shallow copy, which keeps its type and attributes (a
    state dict's ``_metadata``)."""
    if isinstance(container, dict):
        changed = {}
        for key, item in container.items():
            trail.append(key)
            new = convert(item)
            trail.pop()
            if new is not item:
                changed[key] = new
        if not changed:
            return container
        copied = copy.copy(container)
        for key, new in changed.items():  # Counter.update would add
            copied[key] = new
        return copied
    items = []
    for index, item in enumerate(container):
        trail.append(index)
        items.append(convert(item))
        trail.pop()
    if all(new is old for new, old in zip(items, container)):
        return container
    return type(container)(items)


def _array_to_tensor(array: np.ndarray, root: str,
                     trail: List) -> torch.Tensor:
    if array.dtype.kind not in 'biufc':
        raise TypeError(f'{_location(root, trail)} is a numpy array of dtype '
                        f'{array.dtype}, which has no tensor form; only '
                        f'numbers and booleans do')
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder('='))
    # np.ascontiguousarray would make a 0-d array 1-d.
    flags = array.flags
    if not (flags.c_contiguous and flags.aligned and flags.writeable):
        array = array.copy(order='C')
    try:
        return torch.from_numpy(array)
    except TypeError as err:  # e.g. float128
        raise TypeError(f'{_location(root, trail)}: {err}') from None


def _restore(saved: Dict, root: str, trail: List) -> Any:
    form = saved[TYPE_KEY]
    if not isinstance(form, str) or form not in _FORMS:
        raise CheckpointError(
            f'{_location(root, trail)} is a saved object of the unknown form '
            f'{_KEY_REPR.repr(form)} (known: {", ".join(_FORMS)}); the '
            f'checkpoint is damaged or was written by a newer fasternet_mm')
    fields = _FORMS[form]
    if set(saved) != {TYPE_KEY, *fields}:
        extra = sorted(map(_KEY_REPR.repr, set(saved) - {TYPE_KEY}))[:8]
        raise CheckpointError(
            f'{_location(root, trail)} is a damaged saved {form}: it needs '
            f'the fields {list(fields)}, and has [{", ".join(extra)}]')
    try:
        if form == 'mmengine.HistoryBuffer':
            return _restore_history_buffer(saved)
        if form == 'numpy.ndarray':
            return _tensor_to_array(saved['data'], saved['dtype'])
        return _restore_scalar(saved['dtype'], saved['value'])
    except (TypeError, ValueError, OverflowError) as err:
        raise CheckpointError(f'{_location(root, trail)} is a damaged saved '
                              f'{form}: {err}') from None


def _restore_history_buffer(saved: Dict) -> HistoryBuffer:
    log_history = _tensor_to_array(saved['log_history'])
    count_history = _tensor_to_array(saved['count_history'])
    max_length = saved['max_length']
    if type(max_length) is not int or max_length < 1:
        raise ValueError(f'max_length must be a positive int, got '
                         f'{_KEY_REPR.repr(max_length)}')
    # A buffer that a long training filled holds exactly max_length values.
    if log_history.ndim != 1 or log_history.shape != count_history.shape \
            or len(log_history) > max_length:
        raise ValueError(
            f'log_history and count_history must be 1-D, of one length and '
            f'at most max_length={max_length}; their shapes are '
            f'{log_history.shape} and {count_history.shape}')
    if log_history.dtype.kind not in 'biuf' or \
            count_history.dtype.kind not in 'biu':
        raise ValueError(f'log_history must hold numbers and count_history '
                         f'integers; their dtypes are {log_history.dtype} '
                         f'and {count_history.dtype}')
    return HistoryBuffer(log_history, count_history, max_length)


def _tensor_to_array(data: Any, dtype: Any = None) -> np.ndarray:
    if not torch.is_tensor(data):
        raise TypeError(f'its data must be a tensor, got {_type_name(data)}')
    if data.layout != torch.strided or data.is_quantized:
        raise TypeError(f'its data must be a dense tensor, got a '
                        f'{data.layout} {data.dtype} one')
    try:
        # detach: a Parameter or a tensor that requires grad; cpu: a
        # checkpoint loaded onto a GPU, as Runner.resume does.
        array = data.detach().cpu().numpy()
    except (RuntimeError, NotImplementedError) as err:
        raise TypeError(f'its {data.dtype} data has no numpy form '
                        f'({str(err).splitlines()[0][:200]})') from None
    if dtype is None:
        return array
    if not isinstance(dtype, str):
        raise TypeError(f'its dtype must be a string, got {_type_name(dtype)}')
    dtype = np.dtype(dtype)
    if array.dtype != dtype.newbyteorder('='):
        raise TypeError(f'its data is a {data.dtype} tensor, not {dtype}')
    return array.astype(dtype, copy=False)


def _restore_scalar(dtype: Any, value: Any) -> np.generic:
    if not isinstance(dtype, str):
        raise TypeError(f'its dtype must be a string, got {_type_name(dtype)}')
    dtype = np.dtype(dtype)
    if dtype.kind not in 'biuf' or type(value) not in (bool, int, float):
        raise TypeError(f'dtype {dtype} with the value '
                        f'{_KEY_REPR.repr(value)}')
    return dtype.type(value)


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == 'builtins' else \
        f'{kind.__module__}.{kind.__qualname__}'


def restore_checkpoint(content: Any, path: str) -> Dict:
    """A whole checkpoint that a Runner loads (``load_from``, ``--resume``,
    ``tools/test.py``) as read from ``path``, with its weights-only form
    undone (:func:`from_weights_only_form`).

    Raises:
        CheckpointError: naming ``path``, if the content is not a dict or a
            part of it cannot be restored.
    """
    try:
        restored = from_weights_only_form(content)
    except CheckpointError as err:
        raise CheckpointError(f'Cannot restore the checkpoint {path}: {err}'
                              ) from None
    if not isinstance(restored, dict):
        raise CheckpointError(
            f'The checkpoint {path} holds a {_type_name(restored)}; a '
            f'checkpoint holds a dict of weights (and training state)')
    return restored


def write_weights_only_checkpoint(src: Union[str, PathLike],
                                  dst: Union[str, PathLike],
                                  trust_pickle: bool = False) -> None:
    """Re-save a whole checkpoint (MMEngine's, mmdet 2's, ...) so that a
    plain ``torch.load`` reads it on torch >= 2.6: weights, optimizer and
    meta as they are, the message hub's history buffers and numpy values
    in :func:`to_weights_only_form`.

    Raises:
        CheckpointError: if ``src`` cannot be read or restored
            (:func:`restore_checkpoint`), or holds an object that has no
            weights-only form (named).
    """
    content = restore_checkpoint(
        read_checkpoint(src, trust_pickle=trust_pickle), str(src))
    try:
        content = to_weights_only_form(content)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f'Cannot convert {src}: {err}') from None
    save_whole(content, dst)
