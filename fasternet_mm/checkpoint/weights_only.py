"""The weights-only form of whole training checkpoints.

Whole training checkpoints are written in a weights-only form
(:func:`to_weights_only_form`): MMEngine's ``HistoryBuffer`` and numpy values
become tagged plain dicts, so a plain ``torch.load(path)`` reads them on
torch >= 2.6, and :func:`from_weights_only_form` turns them back.
"""
import copy
from collections import Counter, OrderedDict
from os import PathLike
from typing import Any, Dict, Optional, Union

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
    """
    if type(value) in _PLAIN_TYPES or torch.is_tensor(value):
        return value
    if type(value) is HistoryBuffer:
        log_history, count_history = value.data
        return {
            TYPE_KEY: 'mmengine.HistoryBuffer',
            'log_history': _array_to_tensor(log_history, where),
            'count_history': _array_to_tensor(count_history, where),
            'max_length': value.max_length
        }
    if type(value) is np.ndarray:
        return {
            TYPE_KEY: 'numpy.ndarray',
            'dtype': value.dtype.str,
            'data': _array_to_tensor(value, where)
        }
    if isinstance(value, np.generic) and value.dtype.kind in 'biuf':
        return {
            TYPE_KEY: 'numpy.scalar',
            'dtype': value.dtype.str,
            'value': value.item()
        }
    if type(value) in _MAPPINGS + _SEQUENCES + (set, ):
        return _map_items(value, where, to_weights_only_form)
    raise TypeError(
        f'{where} is a {_type_name(value)}, which torch.load cannot read '
        f'with weights_only=True and which has no weights-only form; keep '
        f'tensors, numbers, strings, None, numpy values and dicts, lists '
        f'and tuples of them in a checkpoint')


def from_weights_only_form(value: Any, where: str = 'checkpoint') -> Any:
    """Undo :func:`to_weights_only_form`: every tagged dict in ``value``
    becomes the ``HistoryBuffer``, numpy array or numpy scalar it stands
    for. Anything else passes through, so calling it on a checkpoint that
    was never converted, or twice, changes nothing.

    Raises:
        CheckpointError: naming the key of a tagged dict that is damaged or
            of an unknown form.
    """
    if type(value) in (dict, OrderedDict) and TYPE_KEY in value:
        return _restore(value, where)
    if type(value) in _MAPPINGS + _SEQUENCES:
        return _map_items(value, where, from_weights_only_form)
    return value


def _map_items(container, where: str, convert):
    """``convert`` applied to the items of a dict, list, tuple or set; the
    container itself when no item changed. A changed dict is a shallow
    copy, which keeps its type and attributes (a state dict's
    ``_metadata``)."""
    if isinstance(container, set):
        for item in container:
            if convert(item, f'{where} item {item!r}') is not item:
                raise TypeError(
                    f'{where} is a set holding a {_type_name(item)}; make '
                    f'it a list')
        return container
    if isinstance(container, dict):
        changed = {}
        for key, item in container.items():
            if convert(key, f'{where} key {key!r}') is not key:
                raise TypeError(f'{where} has a key of type '
                                f'{_type_name(key)}: {key!r}')
            new = convert(item, f'{where}[{key!r}]')
            if new is not item:
                changed[key] = new
        if not changed:
            return container
        copied = copy.copy(container)
        for key, new in changed.items():  # Counter.update would add
            copied[key] = new
        return copied
    items = [
        convert(item, f'{where}[{index}]')
        for index, item in enumerate(container)
    ]
    if all(new is old for new, old in zip(items, container)):
        return container
    return type(container)(items)


def _array_to_tensor(array: np.ndarray, where: str) -> torch.Tensor:
    if array.dtype.kind not in 'biufc':
        raise TypeError(f'{where} is a numpy array of dtype {array.dtype}, '
                        f'which has no tensor form; only numbers and '
                        f'booleans do')
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder('='))
    try:
        return torch.from_numpy(np.ascontiguousarray(array))
    except TypeError as err:  # e.g. float128
        raise TypeError(f'{where}: {err}') from None


def _restore(saved: Dict, where: str) -> Any:
    form = saved[TYPE_KEY]
    if not isinstance(form, str) or form not in _FORMS:
        raise CheckpointError(
            f'{where} is a saved object of the unknown form {form!r} (known: '
            f'{", ".join(_FORMS)}); the checkpoint is damaged or was '
            f'written by a newer fasternet_mm')
    fields = _FORMS[form]
    if set(saved) != {TYPE_KEY, *fields}:
        raise CheckpointError(
            f'{where} is a damaged saved {form}: it needs the fields '
            f'{list(fields)}, and has {sorted(set(saved) - {TYPE_KEY})}')
    try:
        if form == 'mmengine.HistoryBuffer':
            return _restore_history_buffer(saved)
        if form == 'numpy.ndarray':
            return _tensor_to_array(saved['data'], saved['dtype'])
        return _restore_scalar(saved['dtype'], saved['value'])
    except (TypeError, ValueError, OverflowError) as err:
        raise CheckpointError(
            f'{where} is a damaged saved {form}: {err}') from None


def _restore_history_buffer(saved: Dict) -> HistoryBuffer:
    log_history = _tensor_to_array(saved['log_history'])
    count_history = _tensor_to_array(saved['count_history'])
    max_length = saved['max_length']
    if type(max_length) is not int or max_length < 1:
        raise ValueError(f'max_length must be a positive int, got '
                         f'{max_length!r}')
    if log_history.ndim != 1 or log_history.shape != count_history.shape \
            or len(log_history) > max_length:
        raise ValueError(
            f'log_history and count_history must be 1-D, of one length and '
            f'at most max_length={max_length}; their shapes are '
            f'{log_history.shape} and {count_history.shape}')
    return HistoryBuffer(log_history, count_history, max_length)


def _tensor_to_array(data: Any, dtype: Optional[str] = None) -> np.ndarray:
    if not torch.is_tensor(data):
        raise TypeError(f'its data must be a tensor, got {_type_name(data)}')
    array = data.numpy()
    if dtype is None:
        return array
    dtype = np.dtype(dtype)
    if array.dtype != dtype.newbyteorder('='):
        raise TypeError(f'its data is a {data.dtype} tensor, not {dtype}')
    return array.astype(dtype, copy=False)


def _restore_scalar(dtype: Any, value: Any) -> np.generic:
    dtype = np.dtype(dtype)
    if dtype.kind not in 'biuf' or type(value) not in (bool, int, float):
        raise TypeError(f'dtype {dtype} with the value {value!r}')
    return dtype.type(value)


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == 'builtins' else \
        f'{kind.__module__}.{kind.__qualname__}'


def write_weights_only_checkpoint(src: Union[str, PathLike],
                                  dst: Union[str, PathLike],
                                  trust_pickle: bool = False) -> None:
    """Re-save a whole checkpoint (MMEngine's, mmdet 2's, ...) so that a
    plain ``torch.load`` reads it on torch >= 2.6: weights, optimizer and
    meta as they are, the message hub's history buffers and numpy values
    in :func:`to_weights_only_form`.

    Raises:
        CheckpointError: if ``src`` cannot be read, or holds an object that
            has no weights-only form (named).
    """
    content = read_checkpoint(src, trust_pickle=trust_pickle)
    try:
        content = to_weights_only_form(content)
    except TypeError as err:
        raise CheckpointError(f'Cannot convert {src}: {err}') from None
    save_whole(content, dst)
