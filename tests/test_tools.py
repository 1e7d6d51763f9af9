"""The command-line tools, end to end, on tiny generated data."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fasternet_mm.shapes import generate

REPO = Path(__file__).resolve().parents[1]
DET_DEMO = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'
SEG_DEMO = REPO / 'configs/demo/fpn_fasternet_t0_shapes.py'


def run_tool(tool, *args, cwd=REPO, env=None):
    return subprocess.run(
        [sys.executable,
         str(REPO / 'tools' / tool), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ, **(env or {})))


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    generate(str(root), num_train=8, num_val=4, size=128, seed=1)
    return root


def last_metrics(work_dir):
    """The metrics a test run logged to its JSON scalars file."""
    logs = sorted(Path(work_dir).glob('*/*.json'))
    assert logs, f'no metrics log under {work_dir}'
    return json.loads(logs[-1].read_text().splitlines()[-1])


def test_det_demo_trains_reloads_and_evaluates(shapes, tmp_path):
    work_dir = tmp_path / 'det'
    options = [
        '--cfg-options', f'data_root={shapes}/', 'train_cfg.max_epochs=4',
        'default_hooks.checkpoint.interval=4', 'param_scheduler.1.end=4'
    ]
    result = run_tool('train.py', DET_DEMO, '--work-dir', work_dir, *options)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
    assert checkpoint.endswith('epoch_4.pth')
    result = run_tool('test.py', DET_DEMO, checkpoint, '--work-dir', work_dir,
                      *options[:2])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = last_metrics(work_dir)
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert isinstance(metrics[key], float) and 0 <= metrics[key] <= 1
    assert 'Average Precision' in result.stdout + result.stderr
    # The deploy form under use_bf16 (backbone, neck, heads) evaluates too.
    result = run_tool('test.py', DET_DEMO, checkpoint, '--work-dir',
                      tmp_path / 'deploy', '--deploy', '--bf16', *options[:2])
    assert result.returncode == 0, result.stderr[-3000:]
    bf16 = last_metrics(tmp_path / 'deploy')
    assert isinstance(bf16['coco/bbox_mAP'], float)
    out_dir = tmp_path / 'vis'
    result = run_tool('image_demo.py', shapes / 'val/00000.png', DET_DEMO,
                      checkpoint, '--out-dir', out_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out_dir / '00000.png').stat().st_size > 0


def test_seg_demo_trains_reloads_and_evaluates(shapes, tmp_path):
    work_dir = tmp_path / 'seg'
    options = ['--cfg-options', f'data_root={shapes}/']
    result = run_tool('train.py', SEG_DEMO, '--work-dir', work_dir, *options,
                      'train_cfg.max_iters=6', 'param_scheduler.0.end=2',
                      'param_scheduler.1.begin=2', 'param_scheduler.1.end=6',
                      'default_hooks.checkpoint.interval=6')
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
    assert checkpoint.endswith('iter_6.pth')
    result = run_tool('test.py', SEG_DEMO, checkpoint, '--work-dir', work_dir,
                      *options)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = last_metrics(work_dir)
    assert isinstance(metrics['mIoU'], float) and 0 <= metrics['mIoU'] <= 100


def test_missing_coco_fails_at_once(tmp_path):
    result = run_tool(
        'train.py', REPO / 'configs/mask_rcnn_fasternet_s.py', cwd=tmp_path)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert "'data/coco/'" in result.stderr
    assert '--cfg-options data_root=' in result.stderr


def test_offline_checkpoint_fails_at_once(tmp_path, shapes):
    coco = tmp_path / 'coco'
    (coco / 'annotations').mkdir(parents=True)
    for split in ('train', 'val'):
        (coco / f'annotations/instances_{split}2017.json').write_text(
            (shapes / f'annotations/instances_{split}.json').read_text())
    # A closed local port stands in for "no internet".
    offline = dict(
        https_proxy='http://127.0.0.1:9',
        HTTPS_PROXY='http://127.0.0.1:9',
        TORCH_HOME=str(tmp_path / 'torch'))
    result = run_tool(
        'train.py',
        REPO / 'configs/mask_rcnn_fasternet_t0.py',
        '--work-dir',
        tmp_path / 'w',
        '--cfg-options',
        f'data_root={coco}/',
        env=offline)
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    assert 'model.backbone.init_cfg: Cannot download the checkpoint' \
        in result.stderr
    assert 'fasternet_t0-epoch.281-val_acc1.71.9180.pth' in result.stderr
    assert 'model.backbone.init_cfg=None' in result.stderr


def test_get_flops_runs():
    result = run_tool('get_flops.py',
                      REPO / 'configs/mask_rcnn_fasternet_t0.py', '--shape',
                      256, 320)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Input shape: (3, 256, 320)' in result.stdout
    flops = float(
        result.stdout.split('FLOPs (multiply-adds): ')[1].split('G')[0])
    assert flops > 1
