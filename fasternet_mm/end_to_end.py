"""End-to-end ONNX graphs of mmdet detectors and mmseg segmentors: image in,
detections or a label map out, in standard ONNX operators only.

:func:`end_to_end_graph` wraps a model (in deploy form, eval mode) in a
module whose trace holds the whole post-processing of the model's
``predict``: decoding the head's maps, the test config's score threshold,
top-k and NMS (ONNX ``NonMaxSuppression``), and for a two-stage detector the
proposals, the multi-level RoI features (ONNX ``RoiAlign``) and the second
stage. :func:`export_end_to_end` writes it with opset 17 and stores in the
file's ``metadata_props`` what a reader needs to prepare an image and read
the outputs (:func:`reader_metadata`); ``tools/onnx_demo.py`` is such a
reader, with onnxruntime, numpy and OpenCV only.

The graph's contract (what mmdet's and mmseg's ``predict`` with
``rescale=True`` give for one image):

- input ``image``: float32 ``[1, 3, H, W]``, H and W dynamic, as the model's
  data preprocessor hands it on: resized as the test pipeline does, in the
  model's channel order, normalised with its mean and std, and padded at the
  bottom and right to its size divisor.
- input ``image_size``: int64 ``[2]``, the height and width of the image in
  ``image`` before the data preprocessor's padding (mmdet's and mmseg's
  ``img_shape``). Boxes are clipped to it, where mmdet clips them.
- a detector's input ``scale_factor``: float32 ``[2]``, the test
  pipeline's resize factors (width, height), as mmdet's ``scale_factor``.
- a segmentor's input ``ori_size``: int64 ``[2]``, the height and width of
  the original image.
- a detector's outputs: ``boxes`` ``[N, 4]`` (x1, y1, x2, y2 in the
  original image's pixels), ``scores`` ``[N]`` (float32) and ``labels``
  ``[N]`` (int64), best first; a Mask R-CNN's also ``masks``
  ``[N, 28, 28]``: the mask head's probabilities for each box's class at
  RoI resolution, which the reader pastes into the image.
- a segmentor's output: ``label_map`` ``[ori_h, ori_w]`` (int64).
"""
import json
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from .errors import ExportError
from .export import _is_segmentor, _is_two_stage, trace_to_onnx

# The version of the graph's inputs and the metadata layout below.
METADATA_FORMAT = 2
# What the reader reproduces of a test pipeline; the others are refused.
PIPELINE_TRANSFORMS = ('LoadImageFromFile', 'Resize', 'Pad',
                       'LoadAnnotations', 'PackDetInputs', 'PackSegInputs')
# The settings of those transforms that the reader applies (the file
# backend's only say where files come from, the others act on annotations
# or on what is packed); a transform given any other is refused.
TRANSFORM_KEYS = dict(
    LoadImageFromFile=('color_type', 'imdecode_backend', 'to_float32',
                       'ignore_empty', 'backend_args', 'file_client_args'),
    Resize=('scale', 'keep_ratio', 'interpolation', 'backend',
            'clip_object_border'),
    Pad=('size', 'size_divisor', 'pad_to_square', 'pad_val',
         'padding_mode'))
# cv2-backed interpolations of mmcv's imresize, by name.
INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic', 'area', 'lanczos')


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


def _test_settings(cfg, keys: Sequence[str], where: str) -> Dict:
    """A head's test config as a dict, with ``max_per_img`` checked; a key
    the graph does not apply is refused by name."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(keys))
    if unknown:
        raise ExportError(
            f'{where}.{unknown[0]} is not exportable end to end; the graph '
            f'applies {", ".join(keys)}')
    if int(cfg.get('max_per_img', 0)) <= 0:
        raise ExportError(
            f'{where}.max_per_img must be a positive number of detections '
            f'to export end to end, got {cfg.get("max_per_img")!r}')
    return cfg


def _check_coder(head: nn.Module, where: str) -> None:
    kind = type(head.bbox_coder).__name__
    if kind not in ('DeltaXYWHBBoxCoder', 'DistancePointBBoxCoder'):
        raise ExportError(
            f'{where}: box coder {kind} is not exportable end to end; '
            f'DeltaXYWHBBoxCoder and DistancePointBBoxCoder are')
    if getattr(head.bbox_coder, 'add_ctr_clamp', False):
        raise ExportError(f'{where}: DeltaXYWHBBoxCoder with add_ctr_clamp '
                          f'is not exportable end to end')


def _decode(head: nn.Module, priors: Tensor, regression: Tensor,
            image_size) -> Tensor:
    if type(head.bbox_coder).__name__ == 'DistancePointBBoxCoder':
        return decode_distances(priors, regression, head.bbox_coder,
                                image_size)
    return decode_deltas(priors, regression, head.bbox_coder,
                         image_size)[:, 0]


def _divide(numerator: Tensor, denominator) -> Tensor:
    """Integer division of non-negative values: truncation, which exports
    as a plain ``Div`` (floor division adds sign handling to the graph)."""
    return torch.div(numerator, denominator, rounding_mode='trunc')


def _flat_maps(maps: Tensor, channels: int) -> Tensor:
    """A head's map (1, A * channels, H, W) as (H * W * A, channels)."""
    return maps[0].permute(1, 2, 0).reshape(-1, channels)


def _rescale(boxes: Tensor, scale_factor: Tensor) -> Tensor:
    """``boxes`` in the input's pixels to the original image's: mmdet's
    ``scale_boxes`` by the reciprocal of the (w, h) ``scale_factor``."""
    return boxes * (1 / scale_factor).repeat(2)


def _size_filter(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes wider and taller than ``min_size``."""
    sizes = boxes[:, 2:] - boxes[:, :2]
    return torch.nonzero((sizes > min_size).all(1)).reshape(-1)


class DenseDetectorGraph(nn.Module):
    """A single-stage detector (RetinaNet, RTMDet, ...: a dense head whose
    predictions mmdet's ``BaseDenseHead`` post-processes) from image to
    ``boxes``, ``scores`` and ``labels``.

    As mmdet's ``predict(rescale=True)``: per pyramid level, the
    (prior, class) pairs scoring above ``score_thr`` and among the
    ``nms_pre`` best; decoding, clipped to the image before padding; the
    boxes scaled to the original image, the ``min_bbox_size`` filter there,
    and NMS down to ``max_per_img``.
    """

    TEST_KEYS = ('nms_pre', 'min_bbox_size', 'score_thr', 'nms',
                 'max_per_img')

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
        head = detector.bbox_head
        kind = type(head).__name__
        for method in ('_predict_by_feat_single', '_bbox_post_process'):
            if getattr(type(head), method) is not getattr(
                    BaseDenseHead, method):
                raise ExportError(
                    f'{kind} post-processes its predictions its own way '
                    f'({method}); only heads that use mmdet\'s '
                    f'BaseDenseHead post-processing (RetinaNet, RTMDet, '
                    f'...) are exportable end to end')
        if getattr(head.loss_cls, 'custom_cls_channels', False):
            raise ExportError(f'{kind}: a loss with custom class channels is '
                              f'not exportable end to end')
        _check_coder(head, kind)
        cfg = _test_settings(head.test_cfg, self.TEST_KEYS, 'model.test_cfg')
        self.nms = NmsSettings(cfg.get('nms'), 'model.test_cfg')
        self.max_per_img = int(cfg['max_per_img'])
        self.score_thr = float(cfg.get('score_thr', 0))
        self.nms_pre = int(cfg.get('nms_pre', -1))
        if self.nms_pre <= 0:
            raise ExportError(
                f'model.test_cfg.nms_pre={self.nms_pre}: mmdet then drops '
                f'the lowest-scoring candidate of each level; a positive '
                f'nms_pre is exportable end to end')
        self.min_bbox_size = float(cfg.get('min_bbox_size', -1))
        self.backbone = detector.backbone
        self.neck = detector.neck if detector.with_neck else None
        self.head = head
        self.eval()

    def forward(self, image: Tensor, image_size: Tensor,
                scale_factor: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        head = self.head
        features = self.backbone(image)
        if self.neck is not None:
            features = self.neck(features)
        outputs = head(features)
        if len(outputs) != 2:
            raise ExportError(
                f'{type(head).__name__} predicts {len(outputs)} kinds of '
                f'maps; only class scores and boxes are exportable end to '
                f'end')
        size = (image_size[0], image_size[1])
        all_scores, all_labels, all_boxes = [], [], []
        for level, (scores, regression) in enumerate(zip(*outputs)):
            priors = grid_priors(head.prior_generator, level, scores)
            scores = _flat_maps(scores, head.cls_out_channels)
            scores = scores.sigmoid() if head.use_sigmoid_cls else \
                scores.softmax(-1)[:, :-1]
            classes = scores.shape[1]
            regression = _flat_maps(regression, head.bbox_coder.encode_size)
            # The pairs above the threshold, then the nms_pre best of them.
            scores = scores.reshape(-1)
            pairs = torch.nonzero(scores > self.score_thr).reshape(-1)
            scores, best = top_k(scores[pairs], self.nms_pre)
            pairs = pairs[best]
            prior_index = _divide(pairs, classes)
            all_scores.append(scores)
            all_labels.append(pairs - prior_index * classes)
            all_boxes.append(
                _decode(head, priors[prior_index], regression[prior_index],
                        size))
        scores = torch.cat(all_scores)
        labels = torch.cat(all_labels)
        boxes = _rescale(torch.cat(all_boxes), scale_factor)
        if self.min_bbox_size >= 0:
            kept = _size_filter(boxes, self.min_bbox_size)
            scores, labels, boxes = scores[kept], labels[kept], boxes[kept]
        keep = batched_nms(boxes, scores, labels, self.nms, self.max_per_img)
        return boxes[keep], scores[keep], labels[keep]


class RoiFeatures(nn.Module):
    """mmdet's ``SingleRoIExtractor`` in ONNX operators: each box is pooled
    from the pyramid level its size maps to (``map_roi_levels``: level
    ``floor(log2(sqrt(w * h) / finest_scale + 1e-6))``, clamped to the
    levels), with the extractor's RoIAlign settings."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        kind = type(extractor).__name__
        if kind != 'SingleRoIExtractor':
            raise ExportError(f'RoI extractor {kind} is not exportable end to '
                              f'end; SingleRoIExtractor is')
        for layer in extractor.roi_layers:
            if getattr(layer, 'pool_mode', 'avg') != 'avg' or not hasattr(
                    layer, 'sampling_ratio'):
                raise ExportError(
                    f'RoI layer {type(layer).__name__} is not exportable end '
                    f'to end; RoIAlign with average pooling is')
        self.layers = [
            (tuple(layer.output_size), float(layer.spatial_scale),
             int(layer.sampling_ratio), bool(layer.aligned))
            for layer in extractor.roi_layers
        ]
        self.finest_scale = float(extractor.finest_scale)
        self.out_channels = extractor.out_channels

    def levels(self, boxes: Tensor) -> Tensor:
        scale = torch.sqrt((boxes[:, 2] - boxes[:, 0]) *
                           (boxes[:, 3] - boxes[:, 1]))
        levels = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
        return levels.clamp(min=0, max=len(self.layers) - 1).long()

    def forward(self, features: Sequence[Tensor], boxes: Tensor) -> Tensor:
        batch_indices = torch.zeros_like(boxes[:, 0], dtype=torch.long)
        if len(self.layers) == 1:
            return RoiAlign.apply(features[0], boxes, batch_indices,
                                  *self.layers[0])
        levels = self.levels(boxes)
        # Pool each level's boxes, then put the results back in the boxes'
        # order. Not by assigning into a zero tensor: its trace specialises
        # to the traced count when a level has one box.
        indices, pooled = [], []
        for level, settings in enumerate(self.layers):
            index = torch.nonzero(levels == level).reshape(-1)
            indices.append(index)
            pooled.append(
                RoiAlign.apply(features[level], boxes[index],
                               batch_indices[index], *settings))
        return torch.cat(pooled)[torch.argsort(torch.cat(indices))]


class TwoStageDetectorGraph(nn.Module):
    """A two-stage detector (Faster R-CNN, Mask R-CNN: an ``RPNHead`` and a
    ``StandardRoIHead``) from image to ``boxes``, ``scores``, ``labels``
    and, with a mask head, ``masks`` at RoI resolution.

    As mmdet's ``predict(rescale=True)``: the RPN keeps each level's
    ``nms_pre`` best anchors, decodes them clipped to the image before
    padding, drops boxes not wider and taller than ``min_bbox_size`` and
    runs NMS per level down to ``max_per_img`` proposals; the second stage
    pools them (``RoiFeatures``), decodes one box per class (clipped
    likewise), keeps the (box, class) pairs above ``score_thr`` and runs
    NMS down to ``max_per_img``; the mask head pools the kept boxes. Boxes
    are scaled to the original image where mmdet scales them: before the
    NMS without a mask head, after the mask pooling with one.
    """

    RPN_KEYS = ('nms_pre', 'max_per_img', 'nms', 'min_bbox_size')
    RCNN_KEYS = ('score_thr', 'nms', 'max_per_img', 'mask_thr_binary')

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        rpn, roi_head = detector.rpn_head, detector.roi_head
        for part, expected in ((rpn, 'RPNHead'), (roi_head,
                                                  'StandardRoIHead')):
            if type(part).__name__ != expected:
                raise ExportError(
                    f'{type(part).__name__} is not exportable end to end; '
                    f'two-stage detectors with an RPNHead and a '
                    f'StandardRoIHead (Faster and Mask R-CNN) are')
        _check_coder(rpn, 'RPNHead')
        _check_coder(roi_head.bbox_head, type(roi_head.bbox_head).__name__)
        if roi_head.bbox_head.custom_cls_channels:
            raise ExportError('a box head with custom class channels is not '
                              'exportable end to end')
        rpn_cfg = _test_settings(rpn.test_cfg, self.RPN_KEYS,
                                 'model.test_cfg.rpn')
        self.rpn_nms = NmsSettings(rpn_cfg.get('nms'), 'model.test_cfg.rpn')
        self.rpn_max = int(rpn_cfg['max_per_img'])
        self.rpn_nms_pre = int(rpn_cfg.get('nms_pre', -1))
        self.rpn_min_size = float(rpn_cfg.get('min_bbox_size', -1))
        rcnn = _test_settings(roi_head.test_cfg, self.RCNN_KEYS,
                              'model.test_cfg.rcnn')
        self.nms = NmsSettings(rcnn.get('nms'), 'model.test_cfg.rcnn')
        self.max_per_img = int(rcnn['max_per_img'])
        self.score_thr = float(rcnn.get('score_thr', 0))
        self.backbone = detector.backbone
        self.neck = detector.neck if detector.with_neck else None
        self.rpn_head = rpn
        self.bbox_roi_features = RoiFeatures(roi_head.bbox_roi_extractor)
        self.bbox_head = roi_head.bbox_head
        self.with_mask = roi_head.with_mask
        if self.with_mask:
            self.mask_roi_features = RoiFeatures(roi_head.mask_roi_extractor)
            self.mask_head = roi_head.mask_head
            if roi_head.share_roi_extractor:
                self.mask_roi_features = self.bbox_roi_features
        self.eval()

    def proposals(self, features: Sequence[Tensor], image_size) -> Tensor:
        """The RPN's proposals, clipped to ``image_size`` (height, width)."""
        rpn = self.rpn_head
        all_scores, all_boxes, all_levels = [], [], []
        for level, (scores, regression) in enumerate(zip(*rpn(features))):
            priors = grid_priors(rpn.prior_generator, level, scores)
            scores = _flat_maps(scores, rpn.cls_out_channels)
            scores = scores.sigmoid()[:, 0] if rpn.use_sigmoid_cls else \
                scores.softmax(-1)[:, 0]
            regression = _flat_maps(regression, 4)
            if self.rpn_nms_pre > 0:
                scores, best = top_k(scores, self.rpn_nms_pre)
                regression, priors = regression[best], priors[best]
            all_scores.append(scores)
            all_boxes.append(
                decode_deltas(priors, regression, rpn.bbox_coder,
                              image_size)[:, 0])
            all_levels.append(torch.full_like(scores, level))
        scores = torch.cat(all_scores)
        boxes = torch.cat(all_boxes)
        levels = torch.cat(all_levels)
        if self.rpn_min_size >= 0:
            kept = _size_filter(boxes, self.rpn_min_size)
            scores, boxes, levels = scores[kept], boxes[kept], levels[kept]
        keep = batched_nms(boxes, scores, levels, self.rpn_nms, self.rpn_max)
        return boxes[keep]

    def forward(self, image: Tensor, image_size: Tensor,
                scale_factor: Tensor) -> Tuple[Tensor, ...]:
        features = self.backbone(image)
        if self.neck is not None:
            features = self.neck(features)
        size = (image_size[0], image_size[1])
        proposals = self.proposals(features, size)
        head = self.bbox_head
        class_scores, regression = head(
            self.bbox_roi_features(features, proposals))
        scores = class_scores.softmax(-1)[:, :-1]
        classes = scores.shape[1]
        boxes = decode_deltas(proposals, regression, head.bbox_coder, size)
        boxes = boxes.expand(-1, classes, -1).reshape(-1, 4)
        if not self.with_mask:
            boxes = _rescale(boxes, scale_factor)
        # The (proposal, class) pairs above the threshold.
        scores = scores.reshape(-1)
        pairs = torch.nonzero(scores > self.score_thr).reshape(-1)
        labels = pairs - _divide(pairs, classes) * classes
        boxes, scores = boxes[pairs], scores[pairs]
        keep = batched_nms(boxes, scores, labels, self.nms, self.max_per_img)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if not self.with_mask:
            return boxes, scores, labels
        masks = self.mask_head(self.mask_roi_features(features, boxes))
        if not self.mask_head.class_agnostic:
            # Each box's mask is the one of its class.
            rows = torch.arange(masks.shape[0]) * masks.shape[1] + labels
            masks = masks.flatten(0, 1)[rows]
        else:
            masks = masks[:, 0]
        # mmdet's mask head divides the boxes by the scale factor in place.
        boxes = boxes / scale_factor.repeat(2)
        return boxes, scores, labels, masks.sigmoid()


class _ScaleUpsample(nn.Module):
    """mmseg's ``Upsample`` by a scale factor, which computes its output
    size in Python ints (constants in a trace) and so freezes the input
    size; ``F.interpolate`` with the same factor keeps the size dynamic and
    gives the same numbers for whole-number factors."""

    def __init__(self, upsample: nn.Module) -> None:
        super().__init__()
        self.scale_factor = upsample.scale_factor
        self.mode = upsample.mode
        self.align_corners = upsample.align_corners

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(
            x,
            scale_factor=self.scale_factor,
            mode=self.mode,
            align_corners=self.align_corners)


class _AdaptiveAveragePool(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two matrix products, which export for
    any input size (the ONNX exporter needs a static size for the pooling
    op itself): output bin i along an axis of n pixels averages pixels
    ``floor(i * n / k)`` to ``ceil((i + 1) * n / k) - 1``, as PyTorch's."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        size = pool.output_size
        self.output_size = tuple(size) if isinstance(size, (tuple, list)) \
            else (size, size)
        if any(s is None for s in self.output_size):
            raise ExportError(f'AdaptiveAvgPool2d({size}) keeps an axis as '
                              f'it is, which is not exportable end to end')

    @staticmethod
    def _weights(pixels: Tensor, bins: int, dtype) -> Tensor:
        """(bins, pixels) averaging weights along one axis."""
        index = torch.arange(bins)[:, None]
        start = _divide(index * pixels, bins)
        end = _divide((index + 1) * pixels + bins - 1, bins)
        position = torch.arange(pixels)[None, :]
        inside = (position >= start) & (position < end)
        return inside.to(dtype) / (end - start).to(dtype)

    def forward(self, x: Tensor) -> Tensor:
        rows = self._weights(x.shape[2], self.output_size[0], x.dtype)
        columns = self._weights(x.shape[3], self.output_size[1], x.dtype)
        return rows @ x @ columns.transpose(0, 1)


class SegmentorGraph(nn.Module):
    """An mmseg ``EncoderDecoder`` with whole-image inference from image to
    ``label_map`` (the original image's height, width), as mmseg's
    ``predict``: the decode head's logits resized to the input with its
    ``align_corners``, the padding cut off, the logits resized to the
    original image, then the best class of each pixel (for one output
    channel: the sigmoid above the head's ``threshold``).

    It works on a copy of ``segmentor`` whose mmseg ``Upsample`` and
    ``nn.AdaptiveAvgPool2d`` (UperNet's pyramid pooling) are replaced by
    equal modules that export with dynamic sizes."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        import copy
        kind = type(segmentor).__name__
        if kind != 'EncoderDecoder':
            raise ExportError(f'{kind} is not exportable end to end; '
                              f'EncoderDecoder is')
        mode = (segmentor.test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            raise ExportError(f"model.test_cfg.mode={mode!r}: only 'whole' "
                              f'inference is exportable end to end')
        # A copy: the Upsample swap below must not change the caller's model.
        segmentor = copy.deepcopy(segmentor)
        # Not used by inference: its weights stay out of the file.
        segmentor.auxiliary_head = None
        for parent in list(segmentor.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.AdaptiveAvgPool2d):
                    setattr(parent, name, _AdaptiveAveragePool(child))
                elif type(child).__name__ == 'Upsample' and not child.size:
                    factor = child.scale_factor
                    factors = factor if isinstance(factor, tuple) else (
                        factor, )
                    if any(f != int(f) for f in factors):
                        raise ExportError(
                            f'Upsample by {factor} is not exportable end to '
                            f'end; whole-number factors are')
                    setattr(parent, name, _ScaleUpsample(child))
        self.segmentor = segmentor
        self.eval()

    def forward(self, image: Tensor, image_size: Tensor,
                ori_size: Tensor) -> Tensor:
        head = self.segmentor.decode_head
        logits = head(self.segmentor.extract_feat(image))
        logits = F.interpolate(
            logits,
            size=image.shape[2:],
            mode='bilinear',
            align_corners=head.align_corners)
        # As mmseg's postprocess_result: the padding cut off, the logits
        # resized to the original image, then the best class.
        logits = logits.index_select(2, torch.arange(image_size[0]))
        logits = logits.index_select(3, torch.arange(image_size[1]))
        logits = F.interpolate(
            logits,
            size=(ori_size[0], ori_size[1]),
            mode='bilinear',
            align_corners=head.align_corners)
        if logits.shape[1] == 1:
            return (logits[0, 0].sigmoid() > head.threshold).long()
        return logits[0].argmax(0)


def end_to_end_graph(model: nn.Module) -> nn.Module:
    """The end-to-end module of an mmdet detector or mmseg segmentor (in
    deploy form, eval mode); :class:`ExportError` names what cannot be
    exported."""
    if _is_segmentor(model):
        return SegmentorGraph(model)
    if _is_two_stage(model):
        return TwoStageDetectorGraph(model)
    if getattr(model, 'bbox_head', None) is not None:
        return DenseDetectorGraph(model)
    raise ExportError(f'{type(model).__name__} is not exportable end to end: '
                      f'neither a detector nor an EncoderDecoder segmentor')


def output_names(graph: nn.Module) -> List[str]:
    if isinstance(graph, SegmentorGraph):
        return ['label_map']
    names = ['boxes', 'scores', 'labels']
    if getattr(graph, 'with_mask', False):
        names.append('masks')
    return names


def _test_pipeline(cfg) -> List[dict]:
    loader = cfg.get('test_dataloader') or {}
    pipeline = (loader.get('dataset') or {}).get('pipeline')
    if pipeline is None:
        pipeline = cfg.get('test_pipeline')
    if pipeline is None:
        raise ExportError('the config has no test pipeline '
                          '(test_dataloader.dataset.pipeline or '
                          'test_pipeline): the reader needs its resize')
    return list(pipeline)


def _pipeline_metadata(pipeline: List[dict]) -> Dict:
    """The resize and padding of a test pipeline, as the reader needs
    them; transforms it cannot reproduce are refused by name."""
    resize = pad = None
    to_float32 = False
    for transform in pipeline:
        kind = transform['type'].split('.')[-1]
        if kind not in PIPELINE_TRANSFORMS:
            raise ExportError(
                f'test pipeline transform {kind!r} is not reproduced by the '
                f'ONNX reader, which knows {PIPELINE_TRANSFORMS}')
        applied = TRANSFORM_KEYS.get(kind)
        unknown = sorted(set(transform) - {'type'} - set(applied)) \
            if applied is not None else []
        if unknown:
            raise ExportError(
                f'{kind}({unknown[0]}=...) is not reproduced by the ONNX '
                f'reader, which applies {kind}\'s '
                f'{", ".join(TRANSFORM_KEYS[kind])}')
        if kind == 'LoadImageFromFile':
            if transform.get('color_type', 'color') != 'color':
                raise ExportError(
                    f'LoadImageFromFile(color_type='
                    f"{transform['color_type']!r}): the reader loads "
                    f"3-channel BGR images ('color')")
            if transform.get('imdecode_backend', 'cv2') != 'cv2':
                raise ExportError(
                    f'LoadImageFromFile(imdecode_backend='
                    f"{transform['imdecode_backend']!r}): the reader "
                    f"decodes images with OpenCV ('cv2')")
            to_float32 = bool(transform.get('to_float32', False))
        if kind == 'Resize':
            if transform.get('scale') is None:
                raise ExportError(
                    f'Resize without a scale ({dict(transform)!r}): the '
                    f'reader reproduces Resize(scale=..., keep_ratio=...)')
            interpolation = transform.get('interpolation', 'bilinear')
            if interpolation not in INTERPOLATIONS or transform.get(
                    'backend', 'cv2') != 'cv2':
                raise ExportError(
                    f'Resize with interpolation={interpolation!r}, backend='
                    f"{transform.get('backend', 'cv2')!r}: the reader "
                    f'resizes with cv2, one of {INTERPOLATIONS}')
            scale = transform['scale']
            scale = [scale, scale] if isinstance(scale, int) else list(scale)
            resize = dict(
                scale=scale,
                keep_ratio=bool(transform.get('keep_ratio', False)),
                interpolation=interpolation)
        if kind == 'Pad':
            value = transform.get('pad_val', dict(img=0))
            value = value.get('img', 0) if isinstance(value, dict) else value
            if transform.get('padding_mode', 'constant') != 'constant':
                raise ExportError('Pad with a padding_mode other than '
                                  "'constant' is not reproduced by the "
                                  'reader')
            size = transform.get('size')
            pad = dict(
                size=list(size) if size is not None else None,
                size_divisor=transform.get('size_divisor'),
                pad_to_square=bool(transform.get('pad_to_square', False)),
                value=list(value) if isinstance(value,
                                                (list, tuple)) else value)
    return dict(resize=resize, pad=pad, to_float32=to_float32)


def _classes(cfg) -> List[str]:
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None and 'type' in dataset:
        from mmengine.registry import DATASETS
        name, scope = dataset['type'], cfg.get('default_scope')
        if isinstance(name, str):
            dataset_class = DATASETS.get(
                f'{scope}.{name}' if scope and '.' not in name else name)
        else:
            dataset_class = name
        classes = getattr(dataset_class, 'METAINFO', {}).get('classes')
    return [str(name) for name in classes or ()]


def reader_metadata(cfg, graph: nn.Module) -> Dict[str, str]:
    """What a reader needs besides the graph, as ONNX ``metadata_props``
    (JSON values): ``task`` (``'detection'``, ``'instance'`` with masks,
    ``'semantic'``), ``classes``, ``preprocess`` (the test pipeline's
    resize and padding, then the data preprocessor's channel order, mean,
    std, padding size divisor and value), and ``mask_threshold``."""
    preprocessor = dict(cfg.model.get('data_preprocessor') or {})
    if isinstance(graph, SegmentorGraph):
        task = 'semantic'
        # mmseg pads at test time only by its test_cfg.
        test_cfg = preprocessor.get('test_cfg') or {}
        if test_cfg.get('size') is not None:
            raise ExportError('data_preprocessor.test_cfg.size pads to a '
                              'fixed size, which the reader does not do')
        size_divisor = test_cfg.get('size_divisor') or 1
        pad_value = preprocessor.get('pad_val', 0)
    else:
        task = 'instance' if output_names(graph)[-1] == 'masks' else \
            'detection'
        size_divisor = preprocessor.get('pad_size_divisor', 1)
        pad_value = preprocessor.get('pad_value', 0)
    if preprocessor.get('mean') is None or preprocessor.get('std') is None:
        raise ExportError('model.data_preprocessor has no mean and std: the '
                          'reader normalises with the ones it is given')
    preprocess = _pipeline_metadata(_test_pipeline(cfg))
    preprocess.update(
        bgr_to_rgb=bool(
            preprocessor.get('bgr_to_rgb', False)
            or preprocessor.get('rgb_to_bgr', False)),
        mean=[float(v) for v in preprocessor['mean']],
        std=[float(v) for v in preprocessor['std']],
        size_divisor=int(size_divisor or 1),
        pad_value=float(pad_value))
    metadata = dict(
        format=METADATA_FORMAT,
        task=task,
        classes=_classes(cfg),
        preprocess=preprocess)
    if task == 'instance':
        rcnn = cfg.model.test_cfg.rcnn
        metadata['mask_threshold'] = float(rcnn.get('mask_thr_binary', 0.5))
    return {key: json.dumps(value) for key, value in metadata.items()}


def input_names(graph: nn.Module) -> List[str]:
    if isinstance(graph, SegmentorGraph):
        return ['image', 'image_size', 'ori_size']
    return ['image', 'image_size', 'scale_factor']


def example_inputs(graph: nn.Module, shape: Sequence[int],
                   seed: int = 0) -> Dict[str, Tensor]:
    """Random inputs of ``graph`` for a padded input of ``shape`` (H, W):
    an image whose last tenth of rows and columns is padding, resized by
    1.5 from the original (a segmentor's ``ori_size``, a detector's
    ``scale_factor``)."""
    generator = torch.Generator().manual_seed(seed)
    height, width = (int(v) for v in shape)
    size = torch.tensor([max(height * 9 // 10, 1), max(width * 9 // 10, 1)])
    inputs = dict(
        image=torch.rand(1, 3, height, width, generator=generator),
        image_size=size)
    if isinstance(graph, SegmentorGraph):
        inputs['ori_size'] = torch.div(size * 2, 3, rounding_mode='floor')
    else:
        inputs['scale_factor'] = torch.tensor([1.5, 1.5])
    return inputs


def export_end_to_end(graph: nn.Module,
                      path: str,
                      shape: Sequence[int],
                      metadata: Optional[Dict[str, str]] = None,
                      opset: int = 17) -> Dict[str, Tensor]:
    """Trace ``graph`` (from :func:`end_to_end_graph`) on random inputs
    for an input image of ``shape`` (H, W) (:func:`example_inputs`) and
    write it to ``path`` with dynamic height, width and detection count,
    and ``metadata`` as its ``metadata_props``. Returns the traced
    inputs."""
    import onnx
    if opset < 16:
        raise ExportError(f'opset {opset}: end-to-end graphs need opset 16 '
                          f'or later (RoiAlign with half_pixel coordinates)')
    names = output_names(graph)
    axes = {'image': {2: 'height', 3: 'width'}}
    if names == ['label_map']:
        axes['label_map'] = {0: 'original_height', 1: 'original_width'}
    else:
        axes.update({name: {0: 'detections'} for name in names})
    inputs = example_inputs(graph, shape)
    trace_to_onnx(graph, tuple(inputs.values()), path, names, axes, opset,
                  input_names(graph))
    model = onnx.load(path)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, path)
    return inputs


def compare_with_onnxruntime(path: str, graph: nn.Module,
                             inputs: Dict[str, Tensor]) -> Dict[str, float]:
    """Run ``path`` with onnxruntime and ``graph`` in PyTorch on ``inputs``
    (as :func:`example_inputs` gives them).

    For a detector: the detection counts of both (``onnx``, ``pytorch``)
    and the largest difference of their sorted scores (``score``; inf
    where the counts differ), which ties among equal scores do not change;
    for a segmentor: the fraction of pixels with the same label
    (``agreement``)."""
    import onnxruntime
    runtime = onnxruntime.InferenceSession(
        path, providers=['CPUExecutionProvider'])
    outputs = runtime.run(
        None, {name: value.numpy()
               for name, value in inputs.items()})
    with torch.no_grad():
        expected = graph(*inputs.values())
    if isinstance(graph, SegmentorGraph):
        same = outputs[0] == expected.numpy()
        return dict(agreement=float(same.mean()) if same.size else 0.)
    scores = torch.from_numpy(outputs[1]).sort(descending=True).values
    reference = expected[1].sort(descending=True).values
    if len(scores) != len(reference):
        score = float('inf')
    elif len(scores) == 0:
        score = 0.
    else:
        score = float((scores - reference).abs().max())
    return dict(onnx=len(scores), pytorch=len(reference), score=score)


def evaluate(cfg, predict: Callable[[np.ndarray], Dict[str, np.ndarray]],
             log_interval: int = 0) -> Dict[str, float]:
    """The metrics of ``cfg``'s test evaluator over its test set for the
    predictions of ``predict``: a function from a BGR uint8 image, read
    from the file as the reader reads it, to a reader's result
    (``boxes``, ``scores``, ``labels`` and ``masks`` in the image's pixels,
    or a ``label_map``), e.g. ``tools/onnx_demo.py``'s ``predict``."""
    import cv2
    from mmengine.evaluator import Evaluator
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmengine.structures import InstanceData, PixelData

    init_default_scope(cfg.default_scope)
    loader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = loader.dataset.metainfo
    logger = MMLogger.get_current_instance()
    for index, batch in enumerate(loader):
        for sample in batch['data_samples']:
            image = cv2.imread(sample.img_path, cv2.IMREAD_COLOR)
            result = predict(image)
            if 'label_map' in result:
                sample.pred_sem_seg = PixelData(
                    data=torch.from_numpy(result['label_map']).long()[None])
            else:
                sample.pred_instances = InstanceData(
                    **{
                        ('bboxes' if key == 'boxes' else key):
                        torch.from_numpy(value)
                        for key, value in result.items()
                    })
        evaluator.process(data_samples=batch['data_samples'], data_batch=batch)
        if log_interval and (index + 1) % log_interval == 0:
            logger.info(f'{index + 1} / {len(loader)} batches')
    return evaluator.evaluate(len(loader.dataset))
