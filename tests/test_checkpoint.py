"""The three published checkpoint layouts, written from models here.

The key names are facts from the official release and from timm; the
fixtures are built from random weights.
"""
import re
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
from helpers import REPO, TINY_RELU_ARCH, Exploit, randomize_norms

from fasternet_mm import FasterNet
from fasternet_mm.checkpoint import (convert_state_dict, detect_layout,
                                     read_checkpoint)
from fasternet_mm.errors import CheckpointError

BLOCK_TO_OFFICIAL = (('partial_conv.conv.', 'spatial_mixing.partial_conv3.'),
                     ('expand.', 'mlp.0.'), ('norm.', 'mlp.1.'), ('project.',
                                                                  'mlp.3.'))


def block_key(rest):
    for ours, theirs in BLOCK_TO_OFFICIAL:
        if rest.startswith(ours):
            return theirs + rest[len(ours):]
    raise AssertionError(rest)


def to_official(state_dict, with_head=True):
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('patch_embed.conv.'):
            key = key.replace('patch_embed.conv.', 'patch_embed.proj.')
        elif m := re.match(r'stages\.(\d)\.downsample\.conv\.(.*)', key):
            key = f'stages.{2 * int(m[1]) - 1}.reduction.{m[2]}'
        elif m := re.match(r'stages\.(\d)\.downsample\.norm\.(.*)', key):
            key = f'stages.{2 * int(m[1]) - 1}.norm.{m[2]}'
        elif m := re.match(r'stages\.(\d)\.blocks\.(\d+)\.(.*)', key):
            key = f'stages.{2 * int(m[1])}.blocks.{m[2]}.{block_key(m[3])}'
        elif m := re.match(r'norm(\d)\.(.*)', key):
            key = f'norm{2 * int(m[1])}.{m[2]}'
        out[key] = value
    if with_head:
        last = state_dict['stages.3.blocks.0.project.weight'].shape[0]
        out['avgpool_pre_head.1.weight'] = torch.randn(1280, last, 1, 1)
        out['head.weight'] = torch.randn(1000, 1280)
        out['head.bias'] = torch.randn(1000)
    return out


def features(model, size=(64, 96)):
    torch.manual_seed(1)
    with torch.no_grad():
        return model.eval()(torch.rand(1, 3, *size))


def assert_same_features(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)


def pretrained(path, prefix=None, **model_kwargs):
    init_cfg = dict(type='Pretrained', checkpoint=str(path))
    if prefix is not None:
        init_cfg['prefix'] = prefix
    model = FasterNet(arch=TINY_RELU_ARCH, init_cfg=init_cfg, **model_kwargs)
    model.init_weights()
    return model.eval()


def test_official_imagenet_layout(tmp_path):
    source = randomize_norms(FasterNet(arch=TINY_RELU_ARCH, out_norm=False))
    official = to_official(source.state_dict())
    assert detect_layout(official) == 'official'
    path = tmp_path / 'fasternet_tiny-epoch.1-val_acc1.0.pth'
    torch.save(official, path)
    loaded = pretrained(path)
    target = FasterNet(arch=TINY_RELU_ARCH, out_norm=False)
    target.load_state_dict(loaded.state_dict(), strict=False)
    assert_same_features(features(target), features(source))
    # The output norms, absent from ImageNet weights, keep their init.
    assert torch.equal(loaded.norm0.weight, torch.ones(16))


def test_official_mmdet_layout_with_prefix(tmp_path):
    source = randomize_norms(FasterNet(arch=TINY_RELU_ARCH))
    state = OrderedDict(
        ('backbone.' + k, v)
        for k, v in to_official(source.state_dict(), with_head=False).items())
    assert 'backbone.norm6.weight' in state
    state['neck.lateral_convs.0.conv.weight'] = torch.randn(8, 16, 1, 1)
    state['rpn_head.rpn_conv.weight'] = torch.randn(8, 8, 3, 3)
    path = tmp_path / 'mask_rcnn_fasternet_tiny_fpn_1x_coco.pth'
    torch.save(
        {
            'meta': {
                'epoch': 12,
                'CLASSES': ('a', 'b')
            },
            'state_dict': state
        }, path)
    assert_same_features(
        features(pretrained(path, prefix='backbone.')), features(source))
    # Without a prefix, the detector checkpoint's backbone is found too.
    assert_same_features(features(pretrained(path)), features(source))


def test_timm_layout_matches_timm_model(tmp_path):
    timm = pytest.importorskip('timm')
    peer = randomize_norms(timm.create_model('fasternet_t0', pretrained=False))
    path = tmp_path / 'timm_fasternet_t0.pth'
    torch.save(peer.state_dict(), path)
    model = FasterNet(
        arch='t0',
        out_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    torch.manual_seed(1)
    x = torch.rand(1, 3, 97, 131)
    with torch.no_grad():
        ours = model.eval()(x)
        theirs = peer.forward_intermediates(x, intermediates_only=True)
    assert_same_features(ours, tuple(theirs))


# timm's official -> timm key mapping, as timm's authors wrote it in
# timm/models/fasternet.py (checkpoint_filter_fn, a comment there in timm
# 1.0.31, so it is quoted here as data): the oracle for the official layout.
TIMM_STAGES_FROM_OFFICIAL = {
    'stages.1.': 'stages.1.downsample.',
    'stages.2.': 'stages.1.',
    'stages.3.': 'stages.2.downsample.',
    'stages.4.': 'stages.2.',
    'stages.5.': 'stages.3.downsample.',
    'stages.6.': 'stages.3.',
}
TIMM_HEAD_FROM_OFFICIAL = {
    'avgpool_pre_head.1.weight': 'conv_head.weight',
    'head.weight': 'classifier.weight',
    'head.bias': 'classifier.bias',
}


def official_from_timm(state_dict):
    """timm's weights under official keys, by timm's table read backwards
    (the longest timm prefix wins: 'stages.1.downsample.' before
    'stages.1.')."""
    heads = {v: k for k, v in TIMM_HEAD_FROM_OFFICIAL.items()}
    stages = sorted(((v, k) for k, v in TIMM_STAGES_FROM_OFFICIAL.items()),
                    key=lambda pair: -len(pair[0]))
    out = OrderedDict()
    for key, value in state_dict.items():
        if key in heads:
            key = heads[key]
        else:
            for timm_prefix, official in stages:
                if key.startswith(timm_prefix):
                    key = official + key[len(timm_prefix):]
                    break
        out[key] = value
    return out


def test_official_layout_follows_timms_mapping(tmp_path):
    """A timm model's weights, renamed to the official layout by timm's own
    table, load through our converter and give timm's features; and the
    official keys the other tests write (to_official) are the same set."""
    timm = pytest.importorskip('timm')
    peer = randomize_norms(timm.create_model('fasternet_t0', pretrained=False))
    official = official_from_timm(peer.state_dict())
    assert detect_layout(official) == 'official'
    ours_as_official = to_official(FasterNet(arch='t0', out_norm=False)
                                   .state_dict())
    assert set(ours_as_official) == set(official)
    path = tmp_path / 'fasternet_t0-epoch.281-val_acc1.71.9180.pth'
    torch.save(official, path)
    model = FasterNet(
        arch='t0',
        out_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    x = torch.rand(1, 3, 97, 131)
    with torch.no_grad():
        ours = model.eval()(x)
        theirs = peer.forward_intermediates(x, intermediates_only=True)
    assert_same_features(ours, tuple(theirs))


def test_ours_passes_through_and_conversion_is_idempotent():
    state = FasterNet(arch=TINY_RELU_ARCH).state_dict()
    assert detect_layout(state) == 'fasternet_mm'
    once = convert_state_dict(to_official(state, with_head=False))
    assert list(once) == list(state)
    assert list(convert_state_dict(once)) == list(state)


def test_load_state_dict_accepts_official_keys():
    """load_from and load_checkpoint go through load_state_dict."""
    source = randomize_norms(FasterNet(arch=TINY_RELU_ARCH))
    target = FasterNet(arch=TINY_RELU_ARCH)
    wrapped = torch.nn.ModuleDict(dict(backbone=target))
    state = {
        'backbone.' + k: v
        for k, v in to_official(source.state_dict(), with_head=False).items()
    }
    result = wrapped.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert_same_features(features(target), features(source))


def test_convert_tool_writes_our_layout(tmp_path):
    source = randomize_norms(FasterNet(arch=TINY_RELU_ARCH, out_norm=False))
    src = tmp_path / 'official.pth'
    dst = tmp_path / 'ours.pth'
    torch.save(to_official(source.state_dict()), src)
    result = subprocess.run([
        sys.executable,
        str(REPO / 'tools/convert_checkpoint.py'),
        str(src),
        str(dst)
    ],
                            capture_output=True,
                            text=True,
                            check=True)
    assert 'official layout' in result.stdout
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert detect_layout(converted) == 'fasternet_mm'
    assert not any(
        k.startswith(('head.', 'avgpool_pre_head.')) for k in converted)
    assert_same_features(
        features(pretrained(dst, out_norm=False)), features(source))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        pretrained(tmp_path / 'nope.pth')


@pytest.mark.parametrize(
    'content', [b'model weights\n', b'hello world',
                bytes(range(256)) * 4])
def test_a_file_that_is_no_checkpoint_is_named_so(tmp_path, content):
    path = tmp_path / 'notes.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match='not a PyTorch checkpoint'):
        read_checkpoint(str(path))


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / 'truncated.pth'
    torch.save(FasterNet(arch=TINY_RELU_ARCH).state_dict(), path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        pretrained(path)


def test_other_arch_names_keys_and_shapes(tmp_path):
    path = tmp_path / 'wider.pth'
    torch.save(
        FasterNet(arch=dict(TINY_RELU_ARCH, embed_dim=24)).state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        pretrained(path)
    message = str(info.value)
    assert 'patch_embed.conv.weight: (24, 3, 4, 4) vs (16, 3, 4, 4)' in message


def test_other_depths_name_the_keys(tmp_path):
    path = tmp_path / 'deeper.pth'
    torch.save(
        FasterNet(arch=dict(TINY_RELU_ARCH, depths=(1, 2, 3, 1))).state_dict(),
        path)
    with pytest.raises(
            CheckpointError, match=r'unexpected keys.*'
            r'stages\.2\.blocks\.2\.'):
        pretrained(path)


def test_unrelated_model_is_refused(tmp_path):
    torchvision = pytest.importorskip('torchvision')
    path = tmp_path / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(CheckpointError, match='not a FasterNet'):
        pretrained(path)


def test_pickled_code_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    state = FasterNet(arch=TINY_RELU_ARCH).state_dict()
    torch.save({'state_dict': state, 'payload': Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match='Refused to load'):
        pretrained(path)
    assert not marker.exists()
    result = subprocess.run([
        sys.executable,
        str(REPO / 'tools/convert_checkpoint.py'),
        str(path),
        str(tmp_path / 'out.pth')
    ],
                            capture_output=True,
                            text=True)
    assert result.returncode != 0 and 'Refused to load' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not marker.exists()


def test_official_mask_rcnn_checkpoint_loads_into_our_config(tmp_path):
    """load_from / tools/test.py with the official mmdet 2 release leaves no
    key missing or unexpected."""
    from helpers import build
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    cfg = Config.fromfile(REPO / 'configs/mask_rcnn_fasternet_t0.py')
    source = build(cfg)
    randomize_norms(source.backbone)
    state = OrderedDict()
    for key, value in source.state_dict().items():
        state[key] = value
    backbone = to_official(
        OrderedDict((k[len('backbone.'):], v) for k, v in state.items()
                    if k.startswith('backbone.')),
        with_head=False)
    state = OrderedDict([(k, v) for k, v in state.items()
                         if not k.startswith('backbone.')] +
                        [('backbone.' + k, v) for k, v in backbone.items()])
    assert 'backbone.stages.1.reduction.weight' in state
    assert 'backbone.norm6.running_var' in state
    path = tmp_path / 'mask_rcnn_fasternet_t0_fpn_1x_coco.pth'
    torch.save(
        {
            'meta': {
                'epoch': 12,
                'CLASSES': ('person', 'bicycle')
            },
            'state_dict': state
        }, path)
    target = build(Config.fromfile(REPO / 'configs/mask_rcnn_fasternet_t0.py'))
    load_checkpoint(target, str(path), strict=True)  # raises on any mismatch
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value, msg=key)
