"""Run an end-to-end ONNX model on images and draw its predictions.

    python tools/onnx_demo.py demo.jpg mask_rcnn.onnx --out demo_pred.png

The model comes from ``tools/export_onnx.py --end-to-end``. This file needs
onnxruntime, numpy and OpenCV, and nothing else: not torch, mmdet, mmseg,
nor fasternet_mm, whose ``__init__`` imports torch. It is self-contained on
purpose, to be copied next to the model. Everything model-specific (the
test pipeline's resize and padding, channel order, mean and std, size
divisor, class names, mask threshold) is read from the ONNX file's
metadata; see docs/onnx.md for the graph's inputs and outputs.

What it does, as mmdet's and mmseg's test pipeline and data preprocessor:
resize (``cv2``, as mmcv's ``imrescale``/``imresize``), pad, normalise and
pad to the size divisor; run the graph on that input, the image's size
before the padding and the resize factors (or the original size), which
gives what ``predict`` with ``rescale=True`` gives; paste each 28x28 mask
into the image (``paste_masks``: the bilinear sampling of mmdet's
``_do_paste_mask``).
"""
import argparse
import json
import math
import os.path as osp
import sys
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

INTERPOLATIONS = dict(
    nearest=cv2.INTER_NEAREST,
    bilinear=cv2.INTER_LINEAR,
    bicubic=cv2.INTER_CUBIC,
    area=cv2.INTER_AREA,
    lanczos=cv2.INTER_LANCZOS4)
# The graph inputs and metadata layout this reader knows.
METADATA_FORMAT = 2


class ReaderError(Exception):
    """A bad path or a model this reader cannot read."""


def load_model(path: str):
    """An ``onnxruntime.InferenceSession`` for ``path`` and the model's
    metadata (JSON values decoded)."""
    import onnxruntime
    if not osp.isfile(path):
        raise ReaderError(f'Model not found: {path!r}')
    runtime = onnxruntime.InferenceSession(
        path, providers=['CPUExecutionProvider'])
    raw = runtime.get_modelmeta().custom_metadata_map
    missing = {'format', 'task', 'preprocess'} - set(raw)
    if missing:
        raise ReaderError(
            f'{path} has no {sorted(missing)} metadata: export it with '
            f'tools/export_onnx.py --end-to-end')
    metadata = {key: json.loads(value) for key, value in raw.items()}
    if metadata['format'] != METADATA_FORMAT:
        raise ReaderError(f'{path}: metadata format {metadata["format"]}, '
                          f'this reader knows {METADATA_FORMAT}')
    return runtime, metadata


def rescaled_size(width: int, height: int,
                  scale: Sequence[int]) -> Tuple[int, int]:
    """mmcv's ``rescale_size``: the largest size with the image's aspect
    ratio within ``scale`` (long edge, short edge in either order)."""
    factor = min(
        max(scale) / max(height, width),
        min(scale) / min(height, width))
    return int(width * float(factor) + 0.5), int(height * float(factor) + 0.5)


def _pad(image: np.ndarray, height: int, width: int, value) -> np.ndarray:
    """``image`` padded at the bottom and right to ``height`` x ``width``."""
    if isinstance(value, (int, float)):
        value = [value] * image.shape[2]
    return cv2.copyMakeBorder(
        image,
        0,
        height - image.shape[0],
        0,
        width - image.shape[1],
        cv2.BORDER_CONSTANT,
        value=tuple(value))


def _round_up(size: int, divisor: int) -> int:
    return int(math.ceil(size / divisor)) * divisor


def preprocess(image: np.ndarray, spec: Dict) -> Tuple[np.ndarray, Dict]:
    """The graph's input for a BGR uint8 ``image`` (as cv2 reads it), and
    what reading the outputs needs: the (w, h) ``scale_factor``, mmdet's
    ``img_shape`` (after resize and the pipeline's padding) and the
    image's own ``ori_shape``."""
    ori_shape = image.shape[:2]
    if spec.get('to_float32'):
        image = image.astype(np.float32)
    resize = spec.get('resize')
    if resize:
        height, width = image.shape[:2]
        if resize['keep_ratio']:
            size = rescaled_size(width, height, resize['scale'])
        else:
            size = tuple(resize['scale'])
        image = cv2.resize(
            image,
            size,
            interpolation=INTERPOLATIONS[resize['interpolation']])
    scale_factor = (image.shape[1] / ori_shape[1],
                    image.shape[0] / ori_shape[0])
    pad = spec.get('pad')
    if pad:
        height, width = image.shape[:2]
        if pad['pad_to_square']:
            height = width = max(height, width)
        if pad['size_divisor']:
            height = _round_up(height, pad['size_divisor'])
            width = _round_up(width, pad['size_divisor'])
        elif pad['size']:
            width, height = pad['size']
        image = _pad(image, height, width, pad['value'])
    image_shape = image.shape[:2]
    tensor = image.astype(np.float32)
    if spec['bgr_to_rgb']:
        tensor = tensor[..., ::-1]
    tensor = (tensor - np.float32(spec['mean'])) / np.float32(spec['std'])
    divisor = spec['size_divisor']
    tensor = _pad(tensor, _round_up(image_shape[0], divisor),
                  _round_up(image_shape[1], divisor), spec['pad_value'])
    tensor = np.ascontiguousarray(tensor.transpose(2, 0, 1)[None])
    return tensor, dict(
        scale_factor=scale_factor,
        image_shape=image_shape,
        ori_shape=ori_shape)


def _bilinear_weights(coords: np.ndarray, size: int) -> np.ndarray:
    """(len(coords), size) weights of linear interpolation at ``coords``
    (pixel-centre units) over ``size`` cells that are zero outside, as
    ``grid_sample(padding_mode='zeros')`` samples."""
    low = np.floor(coords)
    frac = (coords - low).astype(np.float32)
    low = low.astype(np.int64)
    weights = np.zeros((len(coords), size), np.float32)
    rows = np.arange(len(coords))
    for tap, weight in ((low, 1 - frac), (low + 1, frac)):
        inside = (tap >= 0) & (tap < size)
        weights[rows[inside], tap[inside]] = weight[inside]
    return weights


def _grid(start: int, end: int, low: np.float32,
          high: np.float32) -> np.ndarray:
    """Pixel centres from ``start`` to ``end`` in the normalised [-1, 1]
    coordinates of the box [low, high], in float32 as mmdet computes
    them; a box of no size gives 0 instead of inf."""
    centres = np.arange(start, end, dtype=np.float32) + np.float32(0.5)
    with np.errstate(divide='ignore', invalid='ignore'):
        grid = (centres - low) / (high - low) * np.float32(2) - np.float32(1)
    grid[np.isinf(grid)] = 0
    return grid


def paste_masks(masks: np.ndarray, boxes: np.ndarray, height: int,
                width: int, threshold: float) -> np.ndarray:
    """Each RoI-resolution mask probability map (N, h, w) pasted into its
    box of a ``height`` x ``width`` image and binarised at ``threshold``:
    (N, height, width) bool. As mmdet's ``_do_paste_mask`` on the CPU: the
    mask is sampled bilinearly (``align_corners=False``, zero outside) at
    the pixels from one left of/above the box to one right of/below it."""
    pasted = np.zeros((len(masks), height, width), bool)
    for index, (mask, box) in enumerate(zip(masks, boxes)):
        x0, y0, x1, y1 = box.astype(np.float32)
        left = max(int(math.floor(x0)) - 1, 0)
        top = max(int(math.floor(y0)) - 1, 0)
        right = min(int(math.ceil(x1)) + 1, width)
        bottom = min(int(math.ceil(y1)) + 1, height)
        if right <= left or bottom <= top:
            continue
        mask_h, mask_w = mask.shape
        # grid_sample's unnormalisation to cell units.
        xs = ((_grid(left, right, x0, x1) + 1) * mask_w - 1) / 2
        ys = ((_grid(top, bottom, y0, y1) + 1) * mask_h - 1) / 2
        values = _bilinear_weights(ys, mask_h) @ mask.astype(
            np.float32) @ _bilinear_weights(xs, mask_w).T
        pasted[index, top:bottom, left:right] = values >= threshold
    return pasted


def graph_inputs(tensor: np.ndarray, info: Dict) -> Dict[str, np.ndarray]:
    """Every input a graph may take, by name: the ``image``, its
    ``image_size`` before the padding, the (w, h) ``scale_factor`` of the
    resize (detectors) and the original size ``ori_size`` (segmentors)."""
    return dict(
        image=tensor,
        image_size=np.array(info['image_shape'], np.int64),
        scale_factor=np.array(info['scale_factor'], np.float32),
        ori_size=np.array(info['ori_shape'], np.int64))


def postprocess(outputs: Dict[str, np.ndarray], info: Dict,
                metadata: Dict) -> Dict[str, np.ndarray]:
    """The graph's outputs (in the original image's pixels): ``boxes``,
    ``scores``, ``labels`` and, for instance segmentation, ``masks``
    (N, H, W) bool pasted into the image; for semantic segmentation a
    ``label_map`` (H, W)."""
    if metadata['task'] == 'semantic':
        return dict(label_map=outputs['label_map'])
    result = dict(
        boxes=outputs['boxes'],
        scores=outputs['scores'],
        labels=outputs['labels'])
    if 'masks' in outputs:
        ori_h, ori_w = info['ori_shape']
        result['masks'] = paste_masks(outputs['masks'], outputs['boxes'],
                                      ori_h, ori_w,
                                      metadata['mask_threshold'])
    return result


def predict(runtime, metadata: Dict,
            image: np.ndarray) -> Dict[str, np.ndarray]:
    """Predictions for one BGR uint8 image (see :func:`postprocess`)."""
    tensor, info = preprocess(image, metadata['preprocess'])
    inputs = graph_inputs(tensor, info)
    wanted = [item.name for item in runtime.get_inputs()]
    unknown = sorted(set(wanted) - set(inputs))
    if unknown:
        raise ReaderError(f'the graph takes an input {unknown[0]!r} that '
                          f'this reader does not know, only {sorted(inputs)}')
    names = [output.name for output in runtime.get_outputs()]
    outputs = runtime.run(None, {name: inputs[name] for name in wanted})
    return postprocess(dict(zip(names, outputs)), info, metadata)


def palette(count: int) -> List[Tuple[int, int, int]]:
    """``count`` distinct BGR colours, the same on every run."""
    colours = []
    for index in range(count):
        hue = int(180 * ((index * 0.618034) % 1))
        colour = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]),
                              cv2.COLOR_HSV2BGR)[0, 0]
        colours.append(tuple(int(c) for c in colour))
    return colours


def _class_name(classes: List[str], label: int) -> str:
    return classes[label] if 0 <= label < len(classes) else str(label)


def draw(image: np.ndarray, result: Dict[str, np.ndarray], classes: List[str],
         score_thr: float) -> Tuple[np.ndarray, int]:
    """``image`` with the predictions scoring at least ``score_thr`` drawn
    on it (boxes, class and score, masks or the label map blended in), and
    how many were drawn."""
    canvas = image.copy()
    colours = palette(max(len(classes), 1))
    if 'label_map' in result:
        label_map = result['label_map']
        overlay = np.array(colours, np.uint8)[label_map % len(colours)]
        blended = cv2.addWeighted(canvas, 0.5, overlay, 0.5, 0)
        # Label 0 is usually the background: leave it as it was.
        canvas = np.where(label_map[..., None] > 0, blended, canvas)
        return canvas, int(len(np.unique(label_map)))
    shown = np.flatnonzero(result['scores'] >= score_thr)
    for index in shown[::-1]:  # the best last, on top
        label = int(result['labels'][index])
        colour = colours[label % len(colours)]
        if 'masks' in result:
            mask = result['masks'][index]
            canvas[mask] = (0.5 * canvas[mask] +
                            0.5 * np.float32(colour)).astype(np.uint8)
        x0, y0, x1, y1 = (int(round(v)) for v in result['boxes'][index])
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, 1)
        text = f'{_class_name(classes, label)} ' \
            f'{result["scores"][index]:.2f}'
        cv2.putText(canvas, text, (x0, max(y0 - 3, 8)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)
    return canvas, len(shown)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('image', help='an image file')
    parser.add_argument(
        'model', help='an ONNX file from tools/export_onnx.py --end-to-end')
    parser.add_argument('--out', required=True, help='the PNG to write')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='draw detections scoring at least this (default 0.3)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        image = cv2.imread(args.image, cv2.IMREAD_COLOR) if osp.isfile(
            args.image) else None
        if image is None:
            raise ReaderError(f'Image not found or unreadable: '
                              f'{args.image!r}')
        runtime, metadata = load_model(args.model)
    except ReaderError as err:
        sys.exit(f'{osp.basename(sys.argv[0])}: error: {err}')
    result = predict(runtime, metadata, image)
    canvas, shown = draw(image, result, metadata.get('classes', []),
                         args.score_thr)
    if not cv2.imwrite(args.out, canvas):
        sys.exit(f'{osp.basename(sys.argv[0])}: error: cannot write '
                 f'{args.out!r}')
    if 'label_map' in result:
        print(f'{args.image}: {shown} classes in the label map, drawn to '
              f'{args.out}')
        return
    print(f'{args.image}: {len(result["scores"])} detections, {shown} with '
          f'score >= {args.score_thr} drawn to {args.out}')
    for index in np.flatnonzero(result['scores'] >= args.score_thr):
        box = ', '.join(f'{v:.1f}' for v in result['boxes'][index])
        name = _class_name(metadata.get('classes', []),
                           int(result['labels'][index]))
        print(f'  {name} {result["scores"][index]:.3f} [{box}]')


if __name__ == '__main__':
    main()
