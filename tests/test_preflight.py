"""Bad configs and data are reported before any heavy work, in one line."""
import json
from pathlib import Path

import pytest
import torch
from helpers import REPO, Exploit, run_tool
from mmengine.config import Config

from fasternet_mm.errors import PreflightError
from fasternet_mm.preflight import (check_checkpoint_path, check_config,
                                    check_dataset)

DEMO = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'


def demo_config(data_root):
    cfg = Config.fromfile(DEMO)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = str(data_root)
    return cfg


def test_missing_dataset_root_is_named(tmp_path):
    cfg = demo_config(tmp_path / 'nowhere')
    with pytest.raises(
            PreflightError,
            match=r"dataset root '.*nowhere' does not exist.*"
            r'--cfg-options data_root='):
        check_config(cfg, 'train')


def test_broken_annotation_json_is_named(tmp_path):
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations/instances_train.json').write_text('{"images": [')
    cfg = demo_config(tmp_path)
    with pytest.raises(
            PreflightError, match=r'instances_train\.json.*not valid JSON'):
        check_dataset(cfg.train_dataloader.dataset, 'train_dataloader')


def test_missing_annotation_file_is_named(tmp_path):
    cfg = demo_config(tmp_path)
    with pytest.raises(
            PreflightError, match=r'instances_train\.json.*does not exist'):
        check_config(cfg, 'train')


def test_unsafe_load_from_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': Path('.')}, path)  # any non-allow-listed class
    with pytest.raises(PreflightError, match='Refused to load'):
        check_checkpoint_path(str(path), 'load_from')


def run_train(*args, cwd):
    return run_tool('train.py', *args, cwd=cwd)


def test_mismatched_neck_stops_training_at_once(tmp_path):
    result = run_train(
        REPO / 'configs/mask_rcnn_fasternet_s.py',
        '--cfg-options',
        'model.backbone.arch=t0',
        cwd=tmp_path)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert ('model.neck.in_channels=[128, 256, 512, 1024] does not match '
            "the FasterNet backbone's outputs [40, 80, 160, 320]"
            in result.stderr)


def test_broken_json_stops_training_at_once(tmp_path):
    (tmp_path / 'annotations').mkdir()
    for split in ('train', 'val'):
        (tmp_path / f'annotations/instances_{split}.json').write_text(
            json.dumps({'images': []})[:-3])
    result = run_train(
        DEMO, '--cfg-options', f'data_root={tmp_path}/', cwd=tmp_path)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert 'not valid JSON' in result.stderr


def test_test_tool_never_runs_pickled_code(tmp_path, make_shapes):
    data_root = make_shapes(num_train=2, num_val=2, size=64, seed=0)
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'epoch_12.pth'
    torch.save({'state_dict': {}, 'meta': Exploit(marker)}, evil)
    result = run_tool(
        'test.py',
        DEMO,
        evil,
        '--cfg-options',
        f'data_root={data_root}/',
        cwd=tmp_path)
    assert result.returncode == 1
    assert 'Refused to load' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize('roi_layer, dtype, refused', [
    ('RoIAlign', 'bfloat16', True),
    ('GatherRoIAlign', 'bfloat16', False),
    ('RoIAlign', 'float16', False),
])
def test_bf16_amp_refuses_mmcv_roi_align(make_shapes, roi_layer, dtype,
                                         refused):
    cfg = demo_config(
        make_shapes(num_train=1, num_val=1, size=64, seed=0))
    cfg.model.roi_head.mask_roi_extractor.roi_layer.type = roi_layer
    cfg.optim_wrapper = dict(
        type='AmpOptimWrapper',
        dtype=dtype,
        optimizer=cfg.optim_wrapper.optimizer)
    if not refused:
        check_config(cfg, 'train')
        return
    with pytest.raises(
            PreflightError,
            match=r"model\.roi_head\.mask_roi_extractor\.roi_layer\.type="
            r"'RoIAlign'.*'GatherRoIAlign'"):
        check_config(cfg, 'train')
