"""End-to-end graphs of mmdet detectors: single-stage detectors with
mmdet's dense-head post-processing, and Faster and Mask R-CNN with their
proposals, multi-level RoI features and second stage."""
from typing import Dict, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..errors import ExportError
from .boxes import (boxes_larger_than, check_box_coder, decode_boxes,
                    decode_deltas, grid_priors, rescale_boxes)
from .ops import NmsSettings, RoiAlign, batched_nms, integer_divide, top_k


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


def _flat_maps(maps: Tensor, channels: int) -> Tensor:
    """A head's map (1, A * channels, H, W) as (H * W * A, channels)."""
    return maps[0].permute(1, 2, 0).reshape(-1, channels)


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
        check_box_coder(head, kind)
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
            prior_index = integer_divide(pairs, classes)
            all_scores.append(scores)
            all_labels.append(pairs - prior_index * classes)
            all_boxes.append(
                decode_boxes(head, priors[prior_index],
                             regression[prior_index], size))
        scores = torch.cat(all_scores)
        labels = torch.cat(all_labels)
        boxes = rescale_boxes(torch.cat(all_boxes), scale_factor)
        if self.min_bbox_size >= 0:
            kept = boxes_larger_than(boxes, self.min_bbox_size)
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
        check_box_coder(rpn, 'RPNHead')
        check_box_coder(roi_head.bbox_head, type(roi_head.bbox_head).__name__)
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
            kept = boxes_larger_than(boxes, self.rpn_min_size)
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
            boxes = rescale_boxes(boxes, scale_factor)
        # The (proposal, class) pairs above the threshold.
        scores = scores.reshape(-1)
        pairs = torch.nonzero(scores > self.score_thr).reshape(-1)
        labels = pairs - integer_divide(pairs, classes) * classes
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
