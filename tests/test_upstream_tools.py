"""Checkpoints our training writes, read by OpenMMLab's own code: mmdet's
and mmseg's tools/test.py (shipped in their packages), their inferencers
and a plain torch.load, under torch's weights-only default (torch >= 2.6)
and with no allow-list."""
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO
from mmengine.logging import HistoryBuffer
from PIL import Image

from fasternet_mm.checkpoint import TYPE_KEY, from_weights_only_form

DET_DEMO = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'
SEG_DEMO = REPO / 'configs/demo/fpn_fasternet_t0_shapes.py'
# The shapes' side; the demo configs keep each image's size.
SIZE = 128


@pytest.fixture(scope='module')
def workspace(tmp_path_factory, make_shapes):
    """A folder holding the shapes at ``data/shapes/``, the demo configs'
    relative ``data_root``: upstream tools, which do not move datasets for
    ``--cfg-options data_root=...`` as ours do, run from here."""
    root = tmp_path_factory.mktemp('upstream')
    shutil.copytree(
        make_shapes(num_train=4, num_val=2, size=SIZE, seed=4),
        root / 'data/shapes')
    return root


def train(workspace, config, *options):
    """A short run of our tools/train.py; the checkpoint it wrote last."""
    work_dir = workspace / config.stem
    result = subprocess.run([
        sys.executable,
        str(REPO / 'tools/train.py'),
        str(config), '--work-dir',
        str(work_dir), '--cfg-options', 'train_dataloader.batch_size=2',
        *options
    ],
                            capture_output=True,
                            text=True,
                            cwd=workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    return Path((work_dir / 'last_checkpoint').read_text().strip())


@pytest.fixture(scope='module')
def det_checkpoint(workspace):
    """Two iterations of Mask R-CNN: enough for a full message hub."""
    return train(workspace, DET_DEMO, 'train_cfg.max_epochs=1',
                 'default_hooks.checkpoint.interval=1')


@pytest.fixture(scope='module')
def seg_checkpoint(workspace):
    return train(workspace, SEG_DEMO, 'train_cfg.max_iters=2',
                 'param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
                 'param_scheduler.1.end=2',
                 'default_hooks.checkpoint.interval=2')


def assert_no_allow_list():
    """Nothing in this process has allow-listed MMEngine's classes."""
    assert not any(
        HistoryBuffer in (item if isinstance(item, tuple) else (item, ))
        for item in torch.serialization.get_safe_globals())


def upstream_test(library, config, checkpoint, workspace, *args):
    """``library``'s own tools/test.py, found through the installed
    package, in a fresh process: only the config's ``custom_imports``
    imports fasternet_mm there."""
    package = Path(importlib.import_module(library).__file__).parent
    result = subprocess.run([
        sys.executable,
        str(package / '.mim/tools/test.py'),
        str(config),
        str(checkpoint), '--work-dir',
        str(workspace / f'{library}_test'), *args
    ],
                            capture_output=True,
                            text=True,
                            cwd=workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def assert_weights_loaded(model, checkpoint):
    """The model holds the checkpoint's weights, not fresh ones (MMEngine
    only warns about keys it could not load)."""
    saved = torch.load(checkpoint)['state_dict']
    own = model.state_dict()
    assert len(saved) > 100
    for key, value in saved.items():
        assert torch.equal(own[key].cpu(), value), key


@pytest.mark.parametrize('kind', ['det', 'seg'])
def test_plain_torch_load_reads_what_training_wrote(kind, request):
    checkpoint = request.getfixturevalue(f'{kind}_checkpoint')
    assert_no_allow_list()
    content = torch.load(checkpoint)
    saved_loss = content['message_hub']['log_scalars']['train/loss']
    assert saved_loss[TYPE_KEY] == 'mmengine.HistoryBuffer'
    assert saved_loss['count_history'].tolist() == [1, 1]
    restored = from_weights_only_form(content)
    assert isinstance(restored['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)
    assert isinstance(restored['message_hub']['runtime_info']['eta'],
                      np.float64)


def test_mmdet_test_tool_evaluates_the_checkpoint(workspace, det_checkpoint):
    output = upstream_test('mmdet', DET_DEMO, det_checkpoint, workspace)
    assert re.search(r'coco/bbox_mAP: -?\d\.\d+ .*coco/segm_mAP: -?\d\.\d+',
                     output), output[-3000:]


def test_mmdet_inferencer_gives_boxes_and_masks(workspace, det_checkpoint):
    from mmdet.apis import DetInferencer
    assert_no_allow_list()
    inferencer = DetInferencer(
        model=str(DET_DEMO),
        weights=str(det_checkpoint),
        device='cpu',
        show_progress=False)
    assert_weights_loaded(inferencer.model, det_checkpoint)
    image = workspace / 'data/shapes/val/00000.png'
    result = inferencer(
        str(image), return_datasamples=True, no_save_vis=True,
        pred_score_thr=0)
    instances = result['predictions'][0].pred_instances
    assert len(instances) > 0
    assert instances.bboxes.shape == (len(instances), 4)
    assert instances.masks.shape == (len(instances), SIZE, SIZE)


def test_mmseg_test_tool_evaluates_the_checkpoint(workspace, seg_checkpoint):
    masks = workspace / 'masks'
    output = upstream_test('mmseg', SEG_DEMO, seg_checkpoint, workspace,
                           '--out', str(masks))
    assert re.search(r'mIoU: \d+\.\d+', output), output[-3000:]
    for name in ('00000.png', '00001.png'):
        assert Image.open(masks / name).size == (SIZE, SIZE)


def test_mmseg_inferencer_gives_a_mask_of_the_images_size(
        workspace, seg_checkpoint):
    from mmseg.apis import MMSegInferencer
    assert_no_allow_list()
    inferencer = MMSegInferencer(
        model=str(SEG_DEMO), weights=str(seg_checkpoint), device='cpu')
    assert_weights_loaded(inferencer.model, seg_checkpoint)
    image = workspace / 'data/shapes/val/00000.png'
    mask = inferencer(str(image), show=False)['predictions']
    assert mask.shape == (SIZE, SIZE)
    assert set(np.unique(mask)) <= {0, 1, 2, 3}
