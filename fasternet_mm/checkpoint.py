"""Reading FasterNet checkpoints in any of their published layouts.

Three layouts exist besides ours, and each is recognised by its keys:

``'official'``
    The ImageNet release of github.com/JierunChen/FasterNet (v1.0): a flat
    ``stages.0`` .. ``stages.6`` where even indices are stages and odd ones
    patch merges, ``spatial_mixing.partial_conv3`` and ``mlp.{0,1,3}`` in the
    blocks, and the head ``avgpool_pre_head.1`` / ``head``. The official
    Mask R-CNN release nests the same keys under ``backbone.`` inside
    ``state_dict``, with output norms ``norm0``, ``norm2``, ``norm4`` and
    ``norm6``.
``'timm'``
    ``timm.create_model('fasternet_*')``: ``stages.{0..3}.blocks`` and
    ``stages.{1..3}.downsample.reduction``/``norm``, head ``conv_head`` and
    ``classifier``.
``'fasternet_mm'``
    Ours: ``patch_embed.conv``/``norm``, ``stages.{i}.downsample.conv``/
    ``norm``, ``stages.{i}.blocks.{j}.partial_conv.conv``, ``expand``,
    ``norm``, ``project`` and the output norms ``norm{i}``.

Conversion is idempotent: keys already in our layout pass through, so any
mix of loaders can call it.

Whole training checkpoints are written in a weights-only form
(:func:`to_weights_only_form`): MMEngine's ``HistoryBuffer`` and numpy values
become tagged plain dicts, so a plain ``torch.load(path)`` reads them on
torch >= 2.6, and :func:`from_weights_only_form` turns them back.
"""
import copy
import mmap
import os
import os.path as osp
import pickle
import re
import struct
import zipfile
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, MMLogger, print_log

from .compat import mmengine_checkpoints
from .errors import CheckpointError

try:  # zlib-ng's CRC-32 runs about 5x faster than the standard library's
    from zlib_ng.zlib_ng import crc32
except ImportError:
    from zlib import crc32

LAYOUTS = ('fasternet_mm', 'official', 'timm')
# A zip local file header: 30 fixed bytes, the last 4 of which give the
# lengths of the name and the extra field that follow.
_LOCAL_HEADER_SIZE = 30
_NAME_LENGTHS_AT = 26

# Keys of ImageNet classification heads; no backbone has them.
HEAD_PREFIXES = ('avgpool_pre_head.', 'head.', 'conv_head.', 'classifier.')

_BLOCK_RENAMES = (
    ('spatial_mixing.partial_conv3.', 'partial_conv.conv.'),
    ('mlp.0.', 'expand.'),
    ('mlp.1.', 'norm.'),
    ('mlp.3.', 'project.'),
)
_OFFICIAL_STAGE = re.compile(r'^stages\.(\d+)\.(.*)$')
_OFFICIAL_NORM = re.compile(r'^norm(\d+)\.(.*)$')
_TIMM_DOWNSAMPLE = re.compile(r'^stages\.(\d+)\.downsample\.reduction\.(.*)$')


def _rename_block(key: str) -> str:
    """``...blocks.j.mlp.0.weight`` -> ``...blocks.j.expand.weight``."""
    head, sep, tail = key.partition('.blocks.')
    if not sep:
        return key
    index, _, rest = tail.partition('.')
    for old, new in _BLOCK_RENAMES:
        if rest.startswith(old):
            rest = new + rest[len(old):]
            break
    return f'{head}.blocks.{index}.{rest}'


def detect_layout(keys: Iterable[str]) -> str:
    """Return which of :data:`LAYOUTS` a backbone's state-dict keys use.

    Raises:
        CheckpointError: if the keys look like no FasterNet layout.
    """
    keys = list(keys)
    if any('.partial_conv.conv.' in k or k.startswith('patch_embed.conv.')
           for k in keys):
        return 'fasternet_mm'
    if any('.downsample.reduction.' in k for k in keys) or any(
            k.startswith(('conv_head.', 'classifier.')) for k in keys):
        return 'timm'
    if any(re.match(r'^stages\.\d+\.reduction\.', k) for k in keys) or any(
            k.startswith(('avgpool_pre_head.', 'head.')) for k in keys):
        return 'official'
    if any('.spatial_mixing.partial_conv3.' in k for k in keys):
        # Only stage 0 present (e.g. a truncated model): both official and
        # timm number it 0 and name its blocks alike.
        return 'timm'
    sample = keys[:5]
    raise CheckpointError(
        f'These weights are not a FasterNet backbone in any known layout '
        f'({", ".join(LAYOUTS)}); first keys: {sample}')


def convert_state_dict(state_dict: Dict[str, torch.Tensor],
                       layout: Optional[str] = None,
                       drop_head: bool = True) -> 'OrderedDict':
    """Convert a backbone state dict to our layout.

    Args:
        state_dict: Backbone weights (no ``backbone.`` prefix).
        layout: One of :data:`LAYOUTS`, or None to detect it.
        drop_head: Drop ImageNet classification-head keys.

    Returns:
        OrderedDict: The weights under our key names.
    """
    if layout is None:
        layout = detect_layout(state_dict)
    if layout not in LAYOUTS:
        raise ValueError(f'layout must be one of {LAYOUTS}, got {layout!r}')
    converted = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(HEAD_PREFIXES):
            if drop_head:
                continue
            converted[key] = value
            continue
        converted[_convert_key(key, layout)] = value
    return converted


def _convert_key(key: str, layout: str) -> str:
    if layout == 'fasternet_mm':
        return key
    if key.startswith('patch_embed.proj.'):
        return 'patch_embed.conv.' + key[len('patch_embed.proj.'):]
    if layout == 'timm':
        match = _TIMM_DOWNSAMPLE.match(key)
        if match:
            return f'stages.{match[1]}.downsample.conv.{match[2]}'
        return _rename_block(key)
    # Official: a flat list where stage k sits at 2k and the merge that
    # opens stage k at 2k - 1. Each key is renamed on its own into a new
    # dict, so renumbering cannot collide with keys not yet renamed.
    match = _OFFICIAL_STAGE.match(key)
    if match:
        index, rest = int(match[1]), match[2]
        if index % 2 == 0:
            return _rename_block(f'stages.{index // 2}.{rest}')
        rest = rest.replace('reduction.', 'conv.', 1)
        return f'stages.{(index + 1) // 2}.downsample.{rest}'
    match = _OFFICIAL_NORM.match(key)
    if match and int(match[1]) % 2 == 0:
        return f'norm{int(match[1]) // 2}.{match[2]}'
    return key


def unwrap_state_dict(checkpoint: Dict) -> Dict[str, torch.Tensor]:
    """The weights of a checkpoint file's content.

    Accepts a plain state dict or one nested under ``state_dict`` (MMEngine,
    mmdet 2) or ``model`` (some training scripts).
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'A checkpoint must hold a dict, got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    state_dict = OrderedDict()
    for key, value in checkpoint.items():
        if not torch.is_tensor(value):
            continue
        # DataParallel / DistributedDataParallel wrappers.
        state_dict[key[len('module.'):] if key.startswith('module.'
                                                          ) else key] = value
    if not state_dict:
        raise CheckpointError(
            f'The checkpoint holds no tensors; its top-level keys are '
            f'{list(checkpoint)[:10]}')
    return state_dict


def read_checkpoint(path: Union[str, PathLike],
                    map_location: str = 'cpu',
                    trust_pickle: bool = False) -> Dict:
    """Read a checkpoint file or URL with weights-only unpickling.

    Only tensors, containers and plain Python values are unpickled, so a file
    crafted to run code when loaded is refused before anything runs. A
    zip-format file (what ``torch.save`` writes since torch 1.6) has every
    record's CRC-32 checked first, so damaged weights are never loaded
    silently; the legacy format carries no checksum and loads unchecked.
    A URL is downloaded into torch's hub cache and read like a local file.

    Args:
        path: A local path or an http(s) URL.
        map_location: Where tensors are loaded. Defaults to ``'cpu'``.
        trust_pickle: Unpickle arbitrary objects, which can run code: only
            for a file you trust. Defaults to False.

    Raises:
        FileNotFoundError: if a local path does not exist.
        CheckpointError: if the file cannot be read as a checkpoint for any
            reason (corrupt, truncated, not a checkpoint at all, a failed
            checksum, pickled objects other than weights), or cannot be
            downloaded. The message names the file.
    """
    path = str(path)
    if path.startswith(('http://', 'https://')):
        path = download_checkpoint(path)
    elif not Path(path).is_file():
        raise FileNotFoundError(f'Checkpoint file not found: {path!r}')
    # The checksums are checked in a thread while torch.load reads: both
    # release the GIL, so on two or more cores the check costs next to
    # nothing (docs/reliability.md). A damaged record is reported even when
    # it also made torch.load fail: it is the better explanation.
    with ThreadPoolExecutor(max_workers=1) as pool:
        checked = pool.submit(check_zip_records, path)
        try:
            with mmengine_checkpoints():
                content = torch.load(
                    path,
                    map_location=map_location,
                    weights_only=not trust_pickle)
        except Exception as err:  # noqa: B902
            checked.result()
            raise _load_error(path, err, trust_pickle) from None
        checked.result()
    return content


def _load_error(path: str, err: Exception,
                trust_pickle: bool) -> CheckpointError:
    if isinstance(err, pickle.UnpicklingError) and not trust_pickle:
        return CheckpointError(_unsafe_message(path, err))
    # Arbitrary bytes reach torch's and pickle's parsers, which raise nearly
    # any type (IndexError, KeyError, OverflowError, ...).
    return CheckpointError(_corrupt_message(path, err))


def hub_cache_path(url: str) -> str:
    """Where torch's hub cache keeps the file of ``url``."""
    return osp.join(torch.hub.get_dir(), 'checkpoints',
                    osp.basename(urlparse(url).path))


def download_checkpoint(url: str) -> str:
    """The local path of ``url`` in torch's hub cache, downloaded first if
    it is not there yet."""
    cached = hub_cache_path(url)
    if osp.isfile(cached):
        return cached
    os.makedirs(osp.dirname(cached), exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, cached, progress=False)
    except OSError as err:  # URLError, HTTPError, timeouts
        raise CheckpointError(
            f'Cannot download the checkpoint {url} ({type(err).__name__}: '
            f'{err}). Offline, download it elsewhere and pass its local '
            f'path.') from None
    return cached


def check_zip_records(path: str) -> None:
    """Check the CRC-32 of every record of a zip-format checkpoint.

    ``torch.load`` reads records by offset and never checks their
    checksums, so a flipped byte in the tensor data would load as a wrong
    weight. Files that are not zip archives are left to ``torch.load``.

    Raises:
        CheckpointError: naming the first damaged record and the file.
    """
    try:
        damaged = _first_damaged_record(path)
    except Exception as err:  # noqa: B902  (damaged zip headers)
        raise CheckpointError(_corrupt_message(path, err)) from None
    if damaged is not None:
        # torch names records '<archive>/data/17'; the folder is the
        # file's stem at save time, which says nothing here.
        record = damaged.split('/', 1)[-1]
        raise CheckpointError(
            f'The checkpoint {path} is damaged: its record {record!r} fails '
            f'its CRC-32 check, so some weights or metadata would load '
            f'wrong. Copy or download the file again.')


def _first_damaged_record(path: str) -> Optional[str]:
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive, open(path, 'rb') as file, \
            mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data, \
            memoryview(data) as view:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                if not _compressed_record_ok(archive, info):
                    return info.filename
                continue
            # torch stores records uncompressed: checksum them in place in
            # the mapped file, without copying hundreds of MB.
            name_len, extra_len = struct.unpack_from(
                '<HH', data, info.header_offset + _NAME_LENGTHS_AT)
            start = info.header_offset + _LOCAL_HEADER_SIZE + name_len + \
                extra_len
            with view[start:start + info.compress_size] as body:
                if crc32(body) != info.CRC:
                    return info.filename
    return None


def _compressed_record_ok(archive: zipfile.ZipFile,
                          info: zipfile.ZipInfo) -> bool:
    try:
        with archive.open(info) as record:
            while record.read(1 << 20):  # zipfile checks the CRC at the end
                pass
    except zipfile.BadZipFile:
        return False
    return True


def _corrupt_message(path: str, err: Exception) -> str:
    return (f'Cannot read the checkpoint {path}: it is not a PyTorch '
            f'checkpoint, or it is truncated or corrupt '
            f'({type(err).__name__}: {err})')


def _unsafe_message(path: str, err: Exception) -> str:
    if 'Unsupported operand' in str(err):  # not a pickle stream at all
        return _corrupt_message(path, err)
    # torch's message is long; keep its line that names the refused global.
    lines = [line.strip() for line in str(err).splitlines()]
    named = [line for line in lines if 'Unsupported' in line]
    first_line = (named or lines or [''])[0]
    return (
        f'Refused to load {path}: it holds pickled objects other than '
        f'tensors and plain containers, and unpickling them could run '
        f'arbitrary code ({first_line}). If you trust the file, re-save its '
        f'weights once with tools/convert_checkpoint.py --trust-pickle.')


def select_prefix(state_dict: Dict[str, torch.Tensor],
                  prefix: Optional[str]) -> Dict[str, torch.Tensor]:
    """Keep the keys under ``prefix`` (e.g. ``'backbone.'``), stripped.

    With ``prefix=None`` a detector or segmentor checkpoint is recognised by
    its ``backbone.`` keys and those are taken.
    """
    if prefix is None:
        if any(k.startswith('backbone.') for k in state_dict) and not any(
                k.startswith(('patch_embed.', 'stages.')) for k in state_dict):
            prefix = 'backbone.'
        else:
            return state_dict
    if prefix and not prefix.endswith('.'):
        prefix += '.'
    selected = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                           if k.startswith(prefix))
    if not selected:
        roots = sorted({k.split('.', 1)[0] + '.' for k in state_dict})
        raise CheckpointError(
            f'No key of the checkpoint starts with prefix={prefix!r}; its '
            f'top-level prefixes are {roots[:10]}')
    return selected


def check_compatible(model: torch.nn.Module,
                     state_dict: Dict[str, torch.Tensor]) -> List[str]:
    """Check converted weights against a FasterNet; return skipped keys.

    Missing output norms (``norm{i}``) are allowed when the checkpoint has
    none at all, as in ImageNet checkpoints: they keep their initial values.
    Output norms the model does not have (other ``out_indices``, or
    ``out_norm=False``) are skipped. Anything else that is missing,
    unexpected or mis-shaped raises :class:`CheckpointError` naming it.
    """
    own = model.state_dict()
    is_out_norm = re.compile(r'^norm\d+\.').match
    ckpt_has_norms = any(is_out_norm(k) for k in state_dict)
    missing = [
        k for k in own
        if k not in state_dict and not (is_out_norm(k) and not ckpt_has_norms)
    ]
    skipped = [k for k in state_dict if k not in own and is_out_norm(k)]
    unexpected = [k for k in state_dict if k not in own and not is_out_norm(k)]
    mismatched = [(k, tuple(state_dict[k].shape), tuple(own[k].shape))
                  for k in state_dict
                  if k in own and state_dict[k].shape != own[k].shape]
    problems = []
    if mismatched:
        problems.append('shape mismatch (key: checkpoint vs model): ' +
                        '; '.join(f'{k}: {a} vs {b}'
                                  for k, a, b in _first(mismatched)))
    if missing:
        problems.append(f'{len(missing)} missing keys: {_first(missing)}')
    if unexpected:
        problems.append(
            f'{len(unexpected)} unexpected keys: {_first(unexpected)}')
    if problems:
        arch = getattr(model, 'arch', None)
        raise CheckpointError('The checkpoint does not fit this FasterNet' + (
            f" (embed_dim={arch['embed_dim']}, depths={arch['depths']})"
            if arch else '') + ' - is it for another arch or model? ' +
                              ' | '.join(problems))
    return skipped


def _first(items: List, count: int = 8) -> List:
    return items[:count] + (['...'] if len(items) > count else [])


def load_pretrained(model: torch.nn.Module, init_cfg: Dict) -> None:
    """Load ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)``
    strictly into a FasterNet, converting from any known layout."""
    unknown = set(init_cfg) - {'type', 'checkpoint', 'prefix', 'map_location'}
    if unknown:
        raise ValueError(f'Unsupported keys {sorted(unknown)} in the '
                         f'Pretrained init_cfg {init_cfg}')
    if 'checkpoint' not in init_cfg:
        raise ValueError(f'The Pretrained init_cfg needs a "checkpoint", got '
                         f'{init_cfg}')
    checkpoint = init_cfg['checkpoint']
    state_dict = unwrap_state_dict(
        read_checkpoint(checkpoint, init_cfg.get('map_location', 'cpu')))
    state_dict = select_prefix(state_dict, init_cfg.get('prefix'))
    layout = detect_layout(state_dict)
    state_dict = convert_state_dict(state_dict, layout)
    skipped = check_compatible(model, state_dict)
    for key in skipped:
        state_dict.pop(key)
    model.load_state_dict(state_dict, strict=False)
    logger = MMLogger.get_current_instance()
    print_log(
        f'Loaded FasterNet weights from {checkpoint} ({layout} layout, '
        f'{len(state_dict)} tensors)',
        logger=logger)
    if skipped:
        print_log(
            f'Skipped output norms the model does not have: {skipped}',
            logger=logger,
            level=30)


def convert_checkpoint_file(src: Union[str, PathLike],
                            dst: Union[str, PathLike],
                            prefix: Optional[str] = None,
                            trust_pickle: bool = False) -> Tuple[str, int]:
    """Write a backbone checkpoint in our layout; return (layout, #tensors).

    The output is ``{'state_dict': ...}`` with plain backbone keys, loadable
    by ``init_cfg=dict(type='Pretrained', checkpoint=dst)``.
    """
    content = read_checkpoint(src, trust_pickle=trust_pickle)
    state_dict = select_prefix(unwrap_state_dict(content), prefix)
    layout = detect_layout(state_dict)
    state_dict = convert_state_dict(state_dict, layout)
    _save_whole({'state_dict': state_dict}, dst)
    return layout, len(state_dict)


def _save_whole(content: Dict, dst: Union[str, PathLike]) -> None:
    """``torch.save`` to ``dst`` through a temporary file renamed into
    place: an interrupted run leaves no half-written file."""
    partial = f'{dst}.partial'
    torch.save(content, partial)
    os.replace(partial, dst)


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
    _save_whole(content, dst)
