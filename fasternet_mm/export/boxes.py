"""mmdet's box coding in traceable tensor operations: priors of a pyramid
level, the delta and distance coders' decoding, clipping, rescaling to the
original image and the minimum size filter."""
import math
from typing import Tuple

import torch
from torch import Tensor, nn

from ..errors import ExportError


def clip_boxes(boxes: Tensor, height: Tensor, width: Tensor) -> Tensor:
    """``boxes`` (..., 4) clamped to [0, width] x [0, height]."""
    x = boxes[..., 0::2].clamp(min=0)
    y = boxes[..., 1::2].clamp(min=0)
    x = torch.minimum(x, width.to(boxes))
    y = torch.minimum(y, height.to(boxes))
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


def decode_deltas(priors: Tensor, deltas: Tensor, coder,
                  image_size: Tuple[Tensor, Tensor]) -> Tensor:
    """mmdet's ``DeltaXYWHBBoxCoder.decode``: (dx, dy, dw, dh) deltas, one
    or one per class for each prior (``deltas`` (N, 4 * classes)), to boxes
    (N, classes, 4), clipped to the image when the coder clips."""
    deltas = deltas.reshape(-1, deltas.shape[1] // 4, 4)
    deltas = deltas * deltas.new_tensor(coder.stds) + deltas.new_tensor(
        coder.means)
    priors = priors[:, None, :]
    centers = (priors[..., :2] + priors[..., 2:]) * 0.5
    sizes = priors[..., 2:] - priors[..., :2]
    max_ratio = abs(math.log(16 / 1000))  # mmdet's wh_ratio_clip
    centers = centers + sizes * deltas[..., :2]
    sizes = sizes * deltas[..., 2:].clamp(min=-max_ratio, max=max_ratio).exp()
    boxes = torch.cat([centers - sizes * 0.5, centers + sizes * 0.5], dim=-1)
    return clip_boxes(boxes, *image_size) if coder.clip_border else boxes


def decode_distances(points: Tensor, distances: Tensor, coder,
                     image_size: Tuple[Tensor, Tensor]) -> Tensor:
    """mmdet's ``DistancePointBBoxCoder.decode``: distances (left, top,
    right, bottom) from each point to boxes (N, 4)."""
    boxes = torch.cat(
        [points - distances[:, :2], points + distances[:, 2:]], dim=1)
    return clip_boxes(boxes, *image_size) if coder.clip_border else boxes


def grid_priors(prior_generator, level: int, feature: Tensor) -> Tensor:
    """The priors of one pyramid level for the size of ``feature``, in
    mmdet's order (rows, then columns, then the level's base priors):
    anchors (x1, y1, x2, y2) of an ``AnchorGenerator``, points (x, y) of a
    ``MlvlPointGenerator``. Sizes come from the trace, not constants."""
    height, width = feature.shape[-2:]
    stride_w, stride_h = prior_generator.strides[level]
    offset = getattr(prior_generator, 'offset', 0.)
    xs = (torch.arange(width, dtype=feature.dtype) + offset) * stride_w
    ys = (torch.arange(height, dtype=feature.dtype) + offset) * stride_h
    xs = xs[None, :].expand(height, width).reshape(-1)
    ys = ys[:, None].expand(height, width).reshape(-1)
    if hasattr(prior_generator, 'base_anchors'):
        shifts = torch.stack([xs, ys, xs, ys], dim=1)
        base = prior_generator.base_anchors[level].to(feature)
        return (shifts[:, None, :] + base[None]).reshape(-1, 4)
    return torch.stack([xs, ys], dim=1)


def check_box_coder(head: nn.Module, where: str) -> None:
    """Refuse, naming ``where``, a box coder that the graph cannot decode."""
    kind = type(head.bbox_coder).__name__
    if kind not in ('DeltaXYWHBBoxCoder', 'DistancePointBBoxCoder'):
        raise ExportError(
            f'{where}: box coder {kind} is not exportable end to end; '
            f'DeltaXYWHBBoxCoder and DistancePointBBoxCoder are')
    if getattr(head.bbox_coder, 'add_ctr_clamp', False):
        raise ExportError(f'{where}: DeltaXYWHBBoxCoder with add_ctr_clamp '
                          f'is not exportable end to end')


def decode_boxes(head: nn.Module, priors: Tensor, regression: Tensor,
                 image_size) -> Tensor:
    """One box (N, 4) per prior with the coder of ``head``."""
    if type(head.bbox_coder).__name__ == 'DistancePointBBoxCoder':
        return decode_distances(priors, regression, head.bbox_coder,
                                image_size)
    return decode_deltas(priors, regression, head.bbox_coder,
                         image_size)[:, 0]


def rescale_boxes(boxes: Tensor, scale_factor: Tensor) -> Tensor:
    """``boxes`` in the input's pixels to the original image's: mmdet's
    ``scale_boxes`` by the reciprocal of the (w, h) ``scale_factor``."""
    return boxes * (1 / scale_factor).repeat(2)


def boxes_larger_than(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes wider and taller than ``min_size``."""
    sizes = boxes[:, 2:] - boxes[:, :2]
    return torch.nonzero((sizes > min_size).all(1)).reshape(-1)
