"""Checks that run before a Runner is built, so that a bad config, missing
data or an unreachable checkpoint fails at once with a message that says
what to do, instead of minutes later deep inside a library."""
import json
import os.path as osp
from typing import Iterable, List, Optional, Tuple

from mmengine.config import Config

from .checkpoint import read_checkpoint, restore_checkpoint
from .errors import CheckpointError, PreflightError
from .models import FasterNet

PHASES = ('train', 'test')


def check_config(cfg: Config, phase: str) -> None:
    """Run every check for ``phase`` (``'train'`` or ``'test'``)."""
    if phase not in PHASES:
        raise ValueError(f'phase must be one of {PHASES}, got {phase!r}')
    check_model(cfg)
    loaders = ['train_dataloader', 'val_dataloader'] if phase == 'train' \
        else ['test_dataloader']
    if phase == 'train' and cfg.get('val_cfg') is None:
        loaders.remove('val_dataloader')
    for loader in loaders:
        if cfg.get(loader) is not None:
            check_dataset(cfg[loader].dataset, loader)
    if phase == 'train':
        check_backbone_checkpoint(cfg)
        check_bf16_roi_layers(cfg)
    if cfg.get('load_from'):
        check_checkpoint_path(cfg.load_from,
                              '--resume' if cfg.get('resume') else 'load_from')
    elif phase == 'train' and cfg.get('resume'):
        latest = latest_checkpoint(cfg.work_dir)
        if latest:
            check_checkpoint_path(latest, '--resume')


def _type_name(cfg: dict) -> str:
    """A config dict's ``type`` without its scope (``'mmdet.RoIAlign'``
    gives ``'RoIAlign'``)."""
    return str(cfg.get('type', '')).split('.')[-1]


def _roi_layers(node, where: str) -> Iterable[Tuple[str, dict]]:
    """Every ``roi_layer`` dict in a model config, with its key path."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f'{where}.{key}'
            if key == 'roi_layer' and isinstance(value, dict):
                yield path, value
            else:
                yield from _roi_layers(value, path)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _roi_layers(value, f'{where}[{i}]')


def check_bf16_roi_layers(cfg: Config) -> None:
    """mmcv's CUDA RoIAlign takes float and half maps only, and bf16
    autocast hands it bf16 ones; GatherRoIAlign pools those in fp32."""
    wrapper = cfg.get('optim_wrapper') or {}
    if _type_name(wrapper) != 'AmpOptimWrapper' or str(
            wrapper.get('dtype', '')) not in ('bfloat16', 'torch.bfloat16'):
        return
    for path, layer in _roi_layers(cfg.get('model', {}), 'model'):
        if _type_name(layer) == 'RoIAlign':
            raise PreflightError(
                f"{path}.type='RoIAlign': mmcv's RoIAlign cannot read the "
                f"bf16 maps of optim_wrapper.dtype='bfloat16'; set "
                f"{path}.type='GatherRoIAlign' (equal outputs, pools bf16 "
                f"in fp32) or use dtype='float16'")


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint that ``--resume`` without a path would load: the one
    named in the work dir's ``last_checkpoint``, as MMEngine finds it."""
    from mmengine.runner import find_latest_checkpoint
    return find_latest_checkpoint(work_dir) if osp.isdir(work_dir) else None


def _backbone(cfg: Config) -> Optional[dict]:
    backbone = cfg.get('model', {}).get('backbone')
    if backbone and _type_name(backbone) == 'FasterNet':
        return backbone
    return None


def backbone_widths(backbone: dict) -> List[int]:
    """Channels of the features a FasterNet config returns, in order."""
    arch = FasterNet.parse_arch(backbone.get('arch', 's'))
    channels = FasterNet.stage_channels(arch['embed_dim'])
    indices = FasterNet.normalize_out_indices(
        backbone.get('out_indices', (0, 1, 2, 3)))
    return [channels[i] for i in indices]


def check_model(cfg: Config) -> None:
    """FasterNet-specific config errors: widths and stale pretrained URLs."""
    backbone = _backbone(cfg)
    if backbone is None:
        return
    model = cfg.model
    if model.get('pretrained'):
        raise PreflightError(
            f'model.pretrained={model.pretrained!r} is left over from the '
            f'original backbone; mmseg hands it to FasterNet, whose weights '
            f'it is not. Set model.pretrained=None (e.g. --cfg-options '
            f'model.pretrained=None) and load FasterNet weights with '
            f"model.backbone.init_cfg=dict(type='Pretrained', "
            f"checkpoint=...).")
    widths = backbone_widths(backbone)
    for name in ('neck', 'decode_head'):
        module = model.get(name)
        if not isinstance(module, dict) or not isinstance(
                module.get('in_channels'), (list, tuple)):
            continue
        in_channels = list(module.in_channels)
        if in_channels != widths:
            raise PreflightError(
                f'model.{name}.in_channels={in_channels} does not match the '
                f"FasterNet backbone's outputs {widths} (arch="
                f"{backbone.get('arch', 's')!r}, out_indices="
                f"{backbone.get('out_indices', (0, 1, 2, 3))}). Set "
                f'model.{name}.in_channels={widths}.')
        break  # the decode head reads the neck when there is one


def _dataset_roots(dataset: dict) -> Iterable[dict]:
    """The leaf datasets of wrappers like RepeatDataset/ConcatDataset."""
    if 'dataset' in dataset:
        yield from _dataset_roots(dataset.dataset)
    elif 'datasets' in dataset:
        for inner in dataset.datasets:
            yield from _dataset_roots(inner)
    else:
        yield dataset


def check_dataset(dataset: dict, where: str) -> None:
    """The data root exists, and a COCO-style annotation file parses."""
    hint = ('Point to your copy with --cfg-options data_root=/path/to/data/ '
            '(in the layout the config expects).')
    for leaf in _dataset_roots(dataset):
        data_root = leaf.get('data_root') or ''
        if data_root and not osp.isdir(data_root):
            raise PreflightError(
                f'{where}: the dataset root {data_root!r} does not exist '
                f'(dataset type {leaf.get("type")}). {hint}')
        ann_file = leaf.get('ann_file')
        if not ann_file:
            continue
        path = ann_file if osp.isabs(ann_file) else osp.join(
            data_root, ann_file)
        if not osp.isfile(path):
            raise PreflightError(
                f'{where}: the annotation file {path!r} does not exist. '
                f'{hint}')
        if path.endswith('.json'):
            try:
                with open(path, encoding='utf-8') as f:
                    json.load(f)
            except (ValueError, UnicodeDecodeError) as err:
                raise PreflightError(
                    f'{where}: the annotation file {path!r} is not valid '
                    f'JSON ({err}).') from None


def check_backbone_checkpoint(cfg: Config) -> None:
    """The backbone's pretrained weights can be had and read: a local file,
    or a URL found in torch's hub cache or downloaded now (as it would be
    later), is read and its checksums checked."""
    backbone = _backbone(cfg)
    init_cfg = backbone.get('init_cfg') if backbone else None
    if not isinstance(init_cfg, dict) or init_cfg.get('type') != 'Pretrained':
        return
    checkpoint = str(init_cfg.get('checkpoint'))
    fixes = ('Download it elsewhere and pass its local path with '
             '--cfg-options model.backbone.init_cfg.checkpoint=/path/to.pth, '
             'or train from scratch with --cfg-options '
             'model.backbone.init_cfg=None.')
    try:
        read_checkpoint(checkpoint)
    except FileNotFoundError:
        raise PreflightError(
            f'The backbone checkpoint {checkpoint!r} does not exist. '
            f'{fixes}') from None
    except CheckpointError as err:
        raise PreflightError(f'model.backbone.init_cfg: {err} {fixes}') \
            from None


def check_checkpoint_path(path: str, what: str) -> None:
    """A checkpoint given on the command line, as load_from or as the one to
    resume from is readable with weights-only loading, undamaged, a dict,
    and its weights-only form restores (:func:`restore_checkpoint`: no
    damaged saved object, no nesting beyond the limit). A URL is downloaded
    into torch's hub cache, where MMEngine's loader finds it later."""
    try:
        restore_checkpoint(read_checkpoint(path), path)
    except FileNotFoundError:
        raise PreflightError(f'{what}: the checkpoint {path!r} does not '
                             f'exist.') from None
    except CheckpointError as err:
        raise PreflightError(f'{what}: {err}') from None
