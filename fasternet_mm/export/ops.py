"""The ONNX operators of the end-to-end graphs: NMS (ONNX
``NonMaxSuppression``) and RoIAlign (ONNX ``RoiAlign``) as autograd
functions with their symbolics, a top-k that keeps its count dynamic, and
mmcv's ``batched_nms`` over them with the settings of an mmdet test
config."""
from typing import Tuple

import torch
import torchvision
from torch import Tensor

from ..errors import ExportError


class NonMaxSuppression(torch.autograd.Function):
    """Greedy NMS of one set of boxes: the indices of the kept boxes, best
    first, at most ``max_output`` of them; a box is dropped when its IoU with
    a kept better one exceeds ``iou_threshold``, as in mmcv's ``nms``.

    Exported as ONNX ``NonMaxSuppression`` over one batch and one class.
    """

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, iou_threshold: float,
                max_output: int) -> Tensor:
        return torchvision.ops.nms(boxes, scores, iou_threshold)[:max_output]

    @staticmethod
    def symbolic(g, boxes, scores, iou_threshold, max_output):
        axis = g.op('Constant', value_t=torch.tensor([0]))
        selected = g.op(
            'NonMaxSuppression',
            g.op('Unsqueeze', boxes, axis),
            g.op('Unsqueeze', g.op('Unsqueeze', scores, axis), axis),
            g.op('Constant', value_t=torch.tensor([max_output])),
            g.op(
                'Constant',
                value_t=torch.tensor([iou_threshold], dtype=torch.float)),
            center_point_box_i=0)
        # Rows are (batch, class, box index).
        return g.op(
            'Gather',
            selected,
            g.op('Constant', value_t=torch.tensor(2)),
            axis_i=1)


class RoiAlign(torch.autograd.Function):
    """RoIAlign with average pooling of ``boxes`` (x1, y1, x2, y2 in image
    pixels) on one feature map, as mmcv's ``RoIAlign``; ``aligned`` shifts
    by half a pixel. Exported as ONNX ``RoiAlign`` (opset 16 and later:
    ``coordinate_transformation_mode`` ``'half_pixel'`` for ``aligned``)."""

    @staticmethod
    def forward(ctx, features: Tensor, boxes: Tensor, batch_indices: Tensor,
                output_size: Tuple[int, int], spatial_scale: float,
                sampling_ratio: int, aligned: bool) -> Tensor:
        rois = torch.cat([batch_indices[:, None].to(boxes), boxes], dim=1)
        return torchvision.ops.roi_align(features, rois, output_size,
                                         spatial_scale, sampling_ratio,
                                         aligned)

    @staticmethod
    def symbolic(g, features, boxes, batch_indices, output_size,
                 spatial_scale, sampling_ratio, aligned):
        return g.op(
            'RoiAlign',
            features,
            boxes,
            batch_indices,
            coordinate_transformation_mode_s='half_pixel'
            if aligned else 'output_half_pixel',
            mode_s='avg',
            output_height_i=output_size[0],
            output_width_i=output_size[1],
            sampling_ratio_i=sampling_ratio,
            spatial_scale_f=spatial_scale)


def top_k(scores: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """The ``k`` largest of 1-d ``scores`` and their indices, best first,
    or all of them where there are fewer; in a trace ``k`` stays a graph
    value, so that the graph holds for any count."""
    if torch.jit.is_tracing():
        k = torch.clamp(torch._shape_as_tensor(scores)[0], max=k)
    else:
        k = min(k, scores.shape[0])
    return scores.topk(k)


class NmsSettings:
    """The ``nms`` dict of an mmdet test config, as the graph applies it,
    in mmcv's ``batched_nms`` order: boxes scoring at most
    ``score_threshold`` dropped, greedy NMS at ``iou_threshold`` within
    each class (across classes with ``class_agnostic``, but only below
    ``split_thr`` boxes, where mmcv runs one NMS over all of them), at most
    ``max_num`` kept.

    Every key is honoured or refused in one line that names it:
    ``type`` must be ``'nms'`` and ``offset`` 0 (ONNX ``NonMaxSuppression``
    has neither soft NMS nor mmcv's legacy +1 box sizes)."""

    KEYS = ('type', 'iou_threshold', 'class_agnostic', 'score_threshold',
            'max_num', 'split_thr', 'offset')

    def __init__(self, nms, where: str) -> None:
        nms = dict(nms or {})
        unknown = sorted(set(nms) - set(self.KEYS))
        if unknown:
            raise ExportError(
                f'{where}.nms.{unknown[0]} is not exportable end to end; the '
                f'graph applies {", ".join(self.KEYS)}')
        kind = nms.get('type', 'nms')
        if kind != 'nms':
            raise ExportError(f'{where}.nms.type={kind!r} is not exportable '
                              f"end to end; plain 'nms' is")
        if 'iou_threshold' not in nms:
            raise ExportError(f'{where}.nms has no iou_threshold')
        if nms.get('offset', 0) != 0:
            raise ExportError(f"{where}.nms.offset={nms['offset']!r} is not "
                              f'exportable end to end; ONNX NMS has offset 0')
        self.iou_threshold = float(nms['iou_threshold'])
        self.class_agnostic = bool(nms.get('class_agnostic', False))
        self.score_threshold = float(nms.get('score_threshold', 0))
        self.max_num = int(nms.get('max_num', -1))
        self.split_thr = int(nms.get('split_thr', 10000))


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor,
                settings: NmsSettings, max_per_img: int) -> Tensor:
    """Indices of the boxes that survive mmcv's ``batched_nms`` with
    ``settings`` within each class (or any grouping, e.g. pyramid levels),
    best first, at most ``max_per_img`` (and ``settings.max_num``).

    As mmcv: each class's boxes are moved by the class index times (the
    largest coordinate + 1), so that boxes of different classes never
    overlap, and one NMS runs over all of them. With ``class_agnostic``
    they are moved only from ``split_thr`` boxes on, where mmcv runs NMS
    class by class whatever the setting."""
    # A zero in the max keeps it defined without boxes.
    largest = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()
    offsets = classes.to(boxes) * (largest + 1)
    if settings.class_agnostic:
        count = torch._shape_as_tensor(boxes)[0]
        offsets = offsets * (count >= settings.split_thr).to(boxes)
    boxes = boxes + offsets[:, None]
    kept = None
    if settings.score_threshold > 0:
        kept = torch.nonzero(scores > settings.score_threshold).reshape(-1)
        boxes, scores = boxes[kept], scores[kept]
    limit = max_per_img
    if settings.max_num > 0:
        limit = min(limit, settings.max_num)
    keep = NonMaxSuppression.apply(boxes, scores, settings.iou_threshold,
                                   int(limit))
    return keep if kept is None else kept[keep]


def integer_divide(numerator: Tensor, denominator) -> Tensor:
    """Integer division of non-negative values: truncation, which exports
    as a plain ``Div`` (floor division adds sign handling to the graph)."""
    return torch.div(numerator, denominator, rounding_mode='trunc')
