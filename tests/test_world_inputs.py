"""The deploy form against the model as built, through mmdet's own
inference_detector on the COCO-like images (COCO's sizes, padded by the
data preprocessor, empty and grayscale images, objects at the edges).

The deploy form folds BN, swaps mmcv's RoIAlign for GatherRoIAlign and
sets each stage's memory format, by the CPU rule or, emulated here, by the
CUDA rule. The end-to-end ONNX export against mmdet on the same images is
in test_onnx_end_to_end.py."""
import copy

import numpy as np
import pytest
import torch
from helpers import REPO, randomize_norms, world_config, world_images
from mmengine.config import Config

from fasternet_mm.deploy import switch_to_deploy
from fasternet_mm.model_utils import build_model
from fasternet_mm.ops import GatherRoIAlign
from fasternet_mm.testing import match_detections, mmdet_detections

MASK_RCNN = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'


def world_mask_rcnn(root):
    """The demo Mask R-CNN with mmcv's RoIAlign (as the COCO configs) on
    the COCO-like images, resized to fit 448x256 and padded to 32."""
    cfg = world_config(Config.fromfile(str(MASK_RCNN)), root)
    for name in ('bbox_roi_extractor', 'mask_roi_extractor'):
        layer = cfg.model.roi_head[name].roi_layer
        cfg.model.roi_head[name].roi_layer = dict(
            type='RoIAlign',
            output_size=layer.output_size,
            sampling_ratio=layer.sampling_ratio)
    return cfg


def detections(model, cfg, images):
    model.cfg = cfg
    return [mmdet_detections(model, image) for image in images]


@pytest.mark.parametrize('memory_format', ['cpu', 'cuda'])
def test_deploy_form_equals_built_model_on_coco_like_images(
        coco_like_images, memory_format):
    cfg = world_mask_rcnn(coco_like_images)
    torch.manual_seed(0)
    model = randomize_norms(build_model(cfg))
    images = world_images(coco_like_images)
    expected = detections(model, cfg, images)
    deployed = switch_to_deploy(
        copy.deepcopy(model), memory_format=memory_format)
    assert all(
        isinstance(layer, GatherRoIAlign)
        for layer in deployed.roi_head.bbox_roi_extractor.roi_layers)
    ours = detections(deployed, cfg, images)
    counts, unmatched, box_ious, masks_agree, diffs = [], 0, [], [], []
    for a, b in zip(ours, expected):
        stats = match_detections(a, b)
        counts.append(stats['reference'])
        unmatched += stats['unmatched']
        box_ious += stats['box_ious']
        # A mask of under 20 pixels is 1-3 pixels off under BN folding
        # and another memory format: IoU 0.5-0.9 (measured uncapped and
        # with ONEDNN_MAX_CPU_ISA=AVX2 on 1 thread).
        masks_agree += [
            iou >= 0.9 or apart <= 4 for iou, apart in zip(
                stats['mask_ious'], stats['mask_pixels_apart'])
        ]
        diffs += stats['score_diffs']
    # Random weights with non-trivial BatchNorms: boxes in every image.
    assert min(counts) >= 10, counts
    assert unmatched == 0
    assert max(diffs) <= 1e-3
    assert np.mean(np.array(box_ious) >= 0.99) >= 0.99
    assert all(masks_agree)
