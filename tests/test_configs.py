"""Every shipped config loads, builds on CPU and runs one forward."""
import re
from pathlib import Path

import pytest
import torch
from helpers import REPO, SMALL, build, forward_once
from mmengine.config import Config
from mmengine.registry import init_default_scope

from fasternet_mm.models import FasterNet, PartialConvPointwise
from fasternet_mm.preflight import check_model

CONFIGS = sorted(
    p.relative_to(REPO).as_posix() for p in (REPO / 'configs').rglob('*.py')
    if '_base_' not in p.parts)


def test_every_config_is_listed():
    """The table in configs/README.md has one row per config file, and
    no row for a file that is gone."""
    table = (REPO / 'configs/README.md').read_text()
    rows = re.findall(r'^\| \[[^]]+\]\(([^)]+\.py)\) \|', table, re.M)
    assert sorted(f'configs/{row}' for row in rows) == CONFIGS


# The widths of the four stages, written out from the official configs'
# embed_dim (the variant table in docs/backbone.md), not derived
# from FasterNet's own code.
WIDTHS = {
    't0': [40, 80, 160, 320],
    't1': [64, 128, 256, 512],
    't2': [96, 192, 384, 768],
    's': [128, 256, 512, 1024],
    'm': [144, 288, 576, 1152],
    'l': [192, 384, 768, 1536],
}
RELEASE = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/'
IMAGENET_FILES = {
    't0': 'fasternet_t0-epoch.281-val_acc1.71.9180.pth',
    't1': 'fasternet_t1-epoch.291-val_acc1.76.2180.pth',
    't2': 'fasternet_t2-epoch.289-val_acc1.78.8860.pth',
    's': 'fasternet_s-epoch.299-val_acc1.81.2840.pth',
    'm': 'fasternet_m-epoch.291-val_acc1.82.9620.pth',
    'l': 'fasternet_l-epoch.299-val_acc1.83.5060.pth',
}


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_and_runs(path):
    cfg = Config.fromfile(REPO / path)
    assert cfg.custom_imports == dict(
        imports=['fasternet_mm'], allow_failed_imports=False)
    assert cfg.default_hooks.checkpoint.type == \
        'fasternet_mm.AtomicCheckpointHook'
    assert cfg.default_hooks.random_states.type == \
        'fasternet_mm.RandomStateHook'
    check_model(cfg)
    model = build(cfg)
    backbone = cfg.model.backbone
    # The arch in the file name: a variant copied from another must not
    # keep the other's arch.
    named = re.search(r'_fasternet_(t0|t1|t2|s|m|l)_', Path(path).stem + '_')
    if backbone.type != 'FasterNet':  # a stock baseline
        assert named is None
    else:
        assert named and backbone.get('arch', 's') == named.group(1)
        # The channels the built backbone really returns, against the table.
        with torch.no_grad():
            features = model.backbone(torch.rand(1, 3, 64, 64))
        widths = [feature.shape[1] for feature in features]
        table = WIDTHS[backbone.get('arch', 's')]
        assert widths == [
            table[i] for i in backbone.get('out_indices', (0, 1, 2, 3))
        ]
        consumer = cfg.model.get('neck') or cfg.model.decode_head
        assert list(consumer.in_channels) == widths
        init_cfg = backbone.get('init_cfg')
        if init_cfg is not None:  # the demos train from scratch
            assert init_cfg.checkpoint == \
                RELEASE + IMAGENET_FILES[backbone.get('arch', 's')]
    results = forward_once(model, cfg.default_scope)
    assert len(results) == 1
    if cfg.default_scope == 'mmdet':
        assert 'bboxes' in results[0].pred_instances
    else:
        assert results[0].pred_sem_seg.data.shape[-2:] == SMALL


# PConv layers in the neck: one per output conv of a PConv FPN; one per
# CSP block of FasterNetPAFPN (two CSP layers per level after the first,
# one block each), whose output convs are depthwise-separable.
@pytest.mark.parametrize('path,count', [
    ('configs/mask_rcnn_fasternet_t0_pconv_fpn.py', 4),
    ('configs/demo/mask_rcnn_fasternet_t0_pconv_fpn_shapes.py', 4),
    ('configs/rtmdet_tiny_fasternet_t0_pafpn_coco.py', 4),
    ('configs/ablation/rtmdet_tiny_fasternet_t0_shapes.py', 4),
    ('configs/yolox_s_fasternet_t0_pafpn_coco.py', 4),
])
def test_pconv_configs_put_pconv_in_the_neck(path, count):
    pytest.importorskip('mmdet')
    from mmdet.registry import MODELS
    cfg = Config.fromfile(REPO / path)
    init_default_scope(cfg.default_scope)
    neck = MODELS.build(cfg.model.neck)
    pconv_layers = [
        m for m in neck.modules() if isinstance(m, PartialConvPointwise)
    ]
    assert len(pconv_layers) == count
    assert cfg.model.backbone.type == 'FasterNet'


PAPER_RECIPE = {
    # arch: (lr, drop_path_rate)
    't0': (2e-4, 0.0),
    't1': (2e-4, 0.02),
    't2': (2e-4, 0.05),
    's': (2e-4, 0.15),
    'm': (1e-4, 0.2),
    'l': (1e-4, 0.3),
}


@pytest.mark.parametrize('arch', list(PAPER_RECIPE))
def test_mask_rcnn_follows_paper_recipe(arch):
    cfg = Config.fromfile(REPO / f'configs/mask_rcnn_fasternet_{arch}.py')
    lr, rate = PAPER_RECIPE[arch]
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW',
                                                                      lr, 1e-4)
    assert 'clip_grad' not in cfg.optim_wrapper
    # The rate the backbone is built with: the config's, or the arch's
    # ImageNet rate where the paper keeps it.
    backbone = {
        k: v
        for k, v in cfg.model.backbone.items() if k not in ('type', 'init_cfg')
    }
    assert FasterNet(**backbone).arch['drop_path_rate'] == rate
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_cfg.max_epochs == 12
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.end, warmup.by_epoch) == ('LinearLR', 500,
                                                          False)
    assert (steps.type, steps.milestones) == ('MultiStepLR', [8, 11])
    resize = [t for t in cfg.train_pipeline if t.type == 'Resize'][0]
    assert resize.scale == (1333, 800) and resize.keep_ratio
    assert any(t.type == 'RandomFlip' for t in cfg.train_pipeline)
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    assert cfg.val_evaluator.ann_file.endswith('instances_val2017.json')
    assert cfg.model.backbone.arch == arch
    assert cfg.model.backbone.init_cfg.checkpoint == \
        RELEASE + IMAGENET_FILES[arch]
    assert list(cfg.model.neck.in_channels) == WIDTHS[arch]


@pytest.mark.parametrize('arch', ['s', 'm', 'l'])
def test_fpn_ade20k_recipe(arch):
    cfg = Config.fromfile(REPO / f'configs/fpn_fasternet_{arch}_ade20k.py')
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr,
            optimizer.weight_decay) == ('AdamW', 2e-4, 1e-4)
    assert cfg.train_cfg.max_iters == 40000
    assert cfg.train_dataloader.batch_size * 8 == 32
    assert cfg.param_scheduler[0].type == 'PolyLR'
    assert cfg.crop_size == (512, 512)
    assert cfg.model.backbone.arch == arch
    assert list(cfg.model.neck.in_channels) == WIDTHS[arch]


@pytest.mark.parametrize('arch', ['s', 'm', 'l'])
def test_upernet_ade20k_recipe(arch):
    cfg = Config.fromfile(REPO / f'configs/upernet_fasternet_{arch}_ade20k.py')
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.optim_wrapper.optimizer.lr == 6e-5
    assert cfg.model.backbone.arch == arch
    assert list(cfg.model.decode_head.in_channels) == WIDTHS[arch]
    assert cfg.model.auxiliary_head.in_channels == WIDTHS[arch][2]
