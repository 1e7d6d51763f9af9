"""The key layouts of published FasterNet checkpoints, and loading or
converting any of them into ours.

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
"""
import contextlib
import re
from collections import OrderedDict
from os import PathLike
from typing import Dict, Iterable, Iterator, List, Optional, Tuple, Union

import torch
from mmengine.logging import MMLogger, print_log

from ..errors import CheckpointError
from .reading import read_checkpoint, save_whole

LAYOUTS = ('fasternet_mm', 'official', 'timm')

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


@contextlib.contextmanager
def naming_the_file(path: Union[str, PathLike]) -> Iterator[None]:
    """A :class:`CheckpointError` raised in the block about a checkpoint's
    content names the file ``path`` it came from."""
    try:
        yield
    except CheckpointError as err:
        if str(path) in str(err):
            raise
        raise CheckpointError(f'{path}: {err}') from None


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
    content = read_checkpoint(checkpoint, init_cfg.get('map_location', 'cpu'))
    with naming_the_file(checkpoint):
        state_dict = select_prefix(
            unwrap_state_dict(content), init_cfg.get('prefix'))
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
    with naming_the_file(src):
        state_dict = select_prefix(unwrap_state_dict(content), prefix)
        layout = detect_layout(state_dict)
        state_dict = convert_state_dict(state_dict, layout)
    save_whole({'state_dict': state_dict}, dst)
    return layout, len(state_dict)
