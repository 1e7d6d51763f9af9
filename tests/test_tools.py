"""The command-line tools, end to end, on tiny generated data."""
import shutil

import numpy as np
import pytest
import torch
from helpers import (LOSS_FALL, REPO, SHORT_DET_TRAINING, last_metrics,
                     load_tool, loss_fall, run_tool)
from PIL import Image

from fasternet_mm.errors import MissingFileError
from fasternet_mm.precision import ALLOW_EMULATED_BF16

DET_DEMO = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'
SEG_DEMO = REPO / 'configs/demo/fpn_fasternet_t0_shapes.py'
# Measured as LOSS_FALL is (helpers.py): 20 iterations of the seg demo.
SEG_LOSS_FALL = 0.6
SEG_MIN_PIXEL_ACCURACY = 85.0


def test_det_demo_trains_reloads_and_evaluates(shapes, tmp_path):
    work_dir = tmp_path / 'det'
    options = ['--cfg-options', f'data_root={shapes}/']
    result = run_tool('train.py', DET_DEMO, '--work-dir', work_dir, *options,
                      *SHORT_DET_TRAINING)
    assert result.returncode == 0, result.stderr[-3000:]
    assert loss_fall(work_dir) <= LOSS_FALL
    checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
    assert checkpoint.endswith('epoch_20.pth')
    result = run_tool('test.py', DET_DEMO, checkpoint, '--work-dir', work_dir,
                      *options)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = last_metrics(work_dir)
    # The deploy form under use_amp (backbone, neck, heads) scores
    # as the training form does: at most 0.017 bbox and 0.027 segm mAP apart
    # over the runs that set LOSS_FALL. On a CPU without native bf16 that
    # takes the override: numerics, not speed, are under test.
    result = run_tool('test.py', DET_DEMO, checkpoint, '--work-dir',
                      tmp_path / 'deploy', '--deploy', '--amp', *options,
                      env={ALLOW_EMULATED_BF16: '1'})
    assert result.returncode == 0, result.stderr[-3000:]
    bf16 = last_metrics(tmp_path / 'deploy')
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert abs(bf16[key] - metrics[key]) <= 0.05, key
    # Every prediction drawn (score threshold 0) on an image of the input's
    # size.
    out_dir = tmp_path / 'vis'
    image = shapes / 'val/00000.png'
    result = run_tool('image_demo.py', image, DET_DEMO, checkpoint,
                      '--out-dir', out_dir, '--score-thr', 0)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ': 0 instances' not in result.stdout
    source = np.asarray(Image.open(image).convert('RGB'))
    drawn = np.asarray(Image.open(out_dir / '00000.png').convert('RGB'))
    assert drawn.shape == source.shape
    changed = (drawn != source).any(axis=-1).mean()
    assert changed > 0.01


def test_seg_demo_trains_reloads_and_evaluates(shapes, tmp_path):
    work_dir = tmp_path / 'seg'
    options = ['--cfg-options', f'data_root={shapes}/']
    result = run_tool('train.py', SEG_DEMO, '--work-dir', work_dir, *options,
                      'train_cfg.max_iters=20', 'param_scheduler.0.end=5',
                      'param_scheduler.1.begin=5', 'param_scheduler.1.end=20',
                      'default_hooks.checkpoint.interval=20',
                      'default_hooks.logger.interval=4',
                      'log_processor.window_size=4')
    assert result.returncode == 0, result.stderr[-3000:]
    assert loss_fall(work_dir) <= SEG_LOSS_FALL
    checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
    assert checkpoint.endswith('iter_20.pth')
    result = run_tool('test.py', SEG_DEMO, checkpoint, '--work-dir', work_dir,
                      *options)
    assert result.returncode == 0, result.stderr[-3000:]
    # After 20 iterations the model labels background (90.8% of the val
    # pixels) and little else; untrained weights label far fewer right.
    assert last_metrics(work_dir)['aAcc'] >= SEG_MIN_PIXEL_ACCURACY


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


def test_get_flops_equals_the_readme_table(capsys):
    # docs/benchmarks.md#flops: FasterNet-S's backbone in Mask R-CNN at
    # 1280x800 is 93.0G multiply-adds (4.55G at 224x224 scaled by the area).
    load_tool('get_flops').main([
        str(REPO / 'configs/mask_rcnn_fasternet_s.py'), '--shape', '800',
        '1280', '--backbone-only'
    ])
    out = capsys.readouterr().out
    assert 'Input shape: (3, 800, 1280)' in out
    assert 'FLOPs (multiply-adds): 93.0G' in out


def one_line_error(capsys, tool, argv):
    """Run a tool in this process; return its one-line error."""
    with pytest.raises(SystemExit) as info:
        load_tool(tool).main(list(map(str, argv)))
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert 'Traceback' not in err
    # Other lines, if any, are import-time warnings.
    return err.strip().splitlines()[-1]


def test_user_errors_are_one_line_in_every_tool(capsys, tmp_path):
    missing = tmp_path / 'missing.pth'
    cases = {
        'train': ([tmp_path / 'nope.py'], 'Config file not found'),
        'test': ([DET_DEMO, missing, '--out', 'results.txt'],
                 "--out must be a .pkl or .pickle file, got 'results.txt'"),
        'image_demo': ([tmp_path / 'nope.png', DET_DEMO, missing],
                       'Image not found'),
        'get_flops': ([DET_DEMO, '--shape', '16'],
                      '--shape takes H W or one size, each at least 32; '
                      'got [16]'),
        'convert_checkpoint': ([missing, tmp_path / 'out.pth'],
                               'missing.pth'),
        'export_onnx': ([
            tmp_path / 'out.onnx', '--arch', 't0', '--checkpoint', missing
        ], 'missing.pth'),
    }
    if not torch.cuda.is_available():
        cases['benchmark'] = (['--gpu-only'],
                              '--gpu-only: CUDA is not available here')
    for tool, (argv, message) in cases.items():
        line = one_line_error(capsys, tool, argv)
        assert ': error: ' in line and message in line, (tool, line)


def test_a_file_missing_mid_epoch_keeps_its_traceback(
        tmp_path, small_shapes):
    """Only errors found before the run are shortened to one line: a file
    that goes missing inside the training loop raises as it is."""
    root = shutil.copytree(small_shapes, tmp_path / 'shapes')
    for image in (root / 'train').glob('*.png'):
        image.unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_tool('train').main([
            str(DET_DEMO), '--work-dir',
            str(tmp_path / 'work'), '--cfg-options', f'data_root={root}/',
            'train_cfg.max_epochs=1'
        ])
    assert not isinstance(info.value, MissingFileError)
    assert '00000.png' in str(info.value)
