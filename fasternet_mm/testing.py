"""Fixtures of the tests and the benchmark: BatchNorms that show a wrong
mapping, timm's FasterNet with our weights beside it, how far two sets of
outputs differ (:func:`fasternet_mm.export.relative_error`, whose checks
use it too), mmdet's own detections as arrays and how two detection
results match."""
from typing import Callable, Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .checkpoint import convert_state_dict
from .export import relative_error  # noqa: F401 (shared with the tests)
from .models import FasterNet


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm seeded non-trivial statistics and affine
    parameters, in place, and return the model in eval mode (so that the
    statistics are used): with the defaults (mean 0, variance 1, weight 1,
    bias 0) a BN layer is nearly the identity, and copying its values to
    the wrong place, or not at all, would not show in the outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator))
                module.running_var.copy_(
                    torch.rand(n, generator=generator) + .5)
                module.weight.copy_(torch.randn(n, generator=generator))
                module.bias.copy_(torch.randn(n, generator=generator))
    return model.eval()


def timm_peer(arch: str) -> Tuple[nn.Module, FasterNet]:
    """timm's ``fasternet_{arch}`` and our backbone with the same weights
    and drop-path rate (ours without output norms, as timm has none). The
    BatchNorms get non-default statistics first, so that the outputs agree
    only if every one of them was mapped to its counterpart."""
    import timm
    rate = FasterNet.parse_arch(arch)['drop_path_rate']
    peer = timm.create_model(
        f'fasternet_{arch}', pretrained=False, drop_path_rate=rate).eval()
    randomize_norms(peer)
    ours = FasterNet(arch=arch, out_norm=False)
    ours.load_state_dict(convert_state_dict(peer.state_dict(), 'timm'))
    return peer, ours.eval()


def timm_features(peer: nn.Module) -> Callable:
    """Stage features, as mmseg/mmpretrain's TIMMBackbone would give."""
    return lambda x: peer.forward_intermediates(x, intermediates_only=True)


def box_iou(a, b):
    """Pairwise IoU of (x1, y1, x2, y2) boxes, numpy arrays (N, 4), (M, 4)."""
    import numpy as np
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod((high - low).clip(min=0), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def mmdet_detections(model: nn.Module, image: str) -> dict:
    """mmdet's own ``inference_detector`` on the image file ``image`` (the
    test pipeline of ``model.cfg``, the data preprocessor and
    ``predict(rescale=True)``), as the arrays :func:`match_detections`
    takes: ``boxes``, ``scores``, ``labels`` and, where the model predicts
    them, ``masks`` (bool)."""
    from mmdet.apis import inference_detector
    instances = inference_detector(model, str(image)).pred_instances
    result = dict(
        boxes=instances.bboxes.numpy(),
        scores=instances.scores.numpy(),
        labels=instances.labels.numpy())
    if 'masks' in instances:
        result['masks'] = instances.masks.numpy().astype(bool)
    return result


def match_detections(ours: dict, reference: dict) -> dict:
    """How two detection results for one image agree, detection by
    detection: each of ``ours`` (best first) is matched to the unmatched
    ``reference`` detection of its class with the largest box IoU.

    Both are dicts of numpy arrays, ``boxes`` (N, 4), ``scores``,
    ``labels`` and optionally ``masks`` (N, H, W) bool. Returns the counts
    (``ours``, ``reference``), ``unmatched`` (on either side, with no
    reference of their class left or an IoU of 0), the matched pairs'
    ``box_ious``, ``score_diffs``, ``mask_ious`` and
    ``mask_pixels_apart`` (how many pixels differ) as lists."""
    import numpy as np
    boxes, expected = ours['boxes'], reference['boxes']
    iou = box_iou(boxes, expected) if len(boxes) and len(expected) else \
        np.zeros((len(boxes), len(expected)))
    iou[ours['labels'][:, None] != reference['labels'][None]] = -1
    free = np.ones(len(expected), bool)
    stats = dict(
        ours=len(boxes),
        reference=len(expected),
        unmatched=0,
        box_ious=[],
        score_diffs=[],
        mask_ious=[],
        mask_pixels_apart=[])
    for index in range(len(boxes)):
        candidates = np.where(free, iou[index], -1)
        match = int(candidates.argmax()) if len(candidates) else -1
        if match < 0 or candidates[match] <= 0:
            stats['unmatched'] += 1
            continue
        free[match] = False
        stats['box_ious'].append(float(iou[index, match]))
        stats['score_diffs'].append(
            abs(float(ours['scores'][index]) -
                float(reference['scores'][match])))
        if 'masks' in ours:
            a, b = ours['masks'][index], reference['masks'][match]
            union = (a | b).sum()
            stats['mask_ious'].append(
                float((a & b).sum() / union) if union else 1.)
            stats['mask_pixels_apart'].append(int((a != b).sum()))
    stats['unmatched'] += int(free.sum())
    return stats
