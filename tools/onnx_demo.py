"""Run an end-to-end ONNX model on images and draw its predictions.

    python tools/onnx_demo.py demo.jpg mask_rcnn.onnx --out demo_pred.png

The model comes from ``tools/export_onnx.py --end-to-end``, in float32 or
int8 (``--int8``; its metadata says which). This file needs onnxruntime
(or OpenVINO, with ``--backend openvino``), numpy and OpenCV, and nothing
else: not torch, mmdet, mmseg,
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
import struct
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


# Images with more pixels are refused before they are decoded, unless
# --max-pixels allows them: decoding takes 3 bytes a pixel and more.
MAX_PIXELS = 50_000_000
# The outputs each task's graph has (docs/onnx.md).
TASK_OUTPUTS = dict(
    detection=('boxes', 'scores', 'labels'),
    instance=('boxes', 'scores', 'labels', 'masks'),
    semantic=('label_map', ))
# The graph's inputs by task (graph_inputs gives each of them).
TASK_INPUTS = dict(
    detection=('image', 'image_size', 'scale_factor'),
    instance=('image', 'image_size', 'scale_factor'),
    semantic=('image', 'image_size', 'ori_size'))
# The runtimes this reader runs a file with (openvino is optional).
BACKENDS = ('onnxruntime', 'openvino')
# What a file's precision metadata may say (float32 where it says none).
PRECISIONS = ('float32', 'int8')
PREPROCESS_FIELDS = ('bgr_to_rgb', 'mean', 'std', 'size_divisor',
                     'pad_value')


class ReaderError(Exception):
    """A bad path, image or model that this reader cannot read."""


class _Named:

    def __init__(self, name: str) -> None:
        self.name = name


class OpenVinoRuntime:
    """An ONNX file compiled by OpenVINO for the CPU, with the part of
    ``onnxruntime.InferenceSession``'s interface that this reader uses:
    ``get_inputs``, ``get_outputs`` and ``run``; :attr:`metadata` holds the
    file's ``metadata_props``, which OpenVINO keeps as ``framework``
    runtime info."""

    def __init__(self, path: str) -> None:
        import openvino
        core = openvino.Core()
        model = core.read_model(path)
        self.metadata = {}
        if model.has_rt_info(['framework']):
            for key in model.get_rt_info(['framework']).astype(dict):
                self.metadata[key] = model.get_rt_info(['framework',
                                                        key]).astype(str)
        self.compiled = core.compile_model(model, 'CPU')
        self.request = self.compiled.create_infer_request()

    @staticmethod
    def _name(port) -> str:
        # A tensor may carry the name of the node that made it as well.
        return min(port.get_names(), key=lambda name: (name.startswith('/'),
                                                       name))

    def get_inputs(self) -> List[_Named]:
        return [_Named(self._name(port)) for port in self.compiled.inputs]

    def get_outputs(self) -> List[_Named]:
        return [_Named(self._name(port)) for port in self.compiled.outputs]

    def run(self, names, feed: Dict[str, np.ndarray]) -> List[np.ndarray]:
        results = self.request.infer(feed)
        return [np.array(results[port]) for port in self.compiled.outputs]


def _open(path: str, backend: str):
    """The runtime of ``backend`` for ``path`` and the file's metadata
    (JSON strings)."""
    if backend not in BACKENDS:
        raise ReaderError(f'backend {backend!r}: this reader runs '
                          f'{list(BACKENDS)}')
    try:
        if backend == 'openvino':
            try:
                import openvino  # noqa: F401
            except ImportError:
                raise ReaderError('the openvino backend needs the openvino '
                                  'package: pip install openvino') from None
            runtime = OpenVinoRuntime(path)
            return runtime, runtime.metadata
        import onnxruntime
        runtime = onnxruntime.InferenceSession(
            path, providers=['CPUExecutionProvider'])
        return runtime, runtime.get_modelmeta().custom_metadata_map
    except ReaderError:
        raise
    except Exception as err:  # noqa: B902  (the runtimes' own types)
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ReaderError(f'{path} is not an ONNX model that {backend} '
                          f'can load ({reason[:200]})') from None


def load_model(path: str, backend: str = 'onnxruntime'):
    """A runtime for ``path`` (an ``onnxruntime.InferenceSession``, or
    with ``backend='openvino'`` an :class:`OpenVinoRuntime`) and the
    model's metadata (JSON values decoded), checked against the graph."""
    if not osp.isfile(path):
        raise ReaderError(f'Model not found: {path!r}')
    runtime, raw = _open(path, backend)
    missing = {'format', 'task', 'preprocess'} - set(raw)
    if missing:
        raise ReaderError(
            f'{path} has no {sorted(missing)} metadata: export it with '
            f'tools/export_onnx.py --end-to-end')
    metadata = {}
    for key, value in raw.items():
        try:
            metadata[key] = json.loads(value)
        except ValueError:
            raise ReaderError(f'{path}: its metadata {key!r} is not JSON '
                              f'({value[:40]!r})') from None
    if metadata['format'] != METADATA_FORMAT:
        raise ReaderError(f'{path}: metadata format {metadata["format"]}, '
                          f'this reader knows {METADATA_FORMAT}')
    check_metadata(path, metadata,
                   [node.name for node in runtime.get_inputs()],
                   [node.name for node in runtime.get_outputs()])
    return runtime, metadata


def check_metadata(path: str, metadata: Dict, inputs: List[str],
                   outputs: List[str]) -> None:
    """Raise :class:`ReaderError` unless the metadata has what this reader
    uses, and the graph the inputs and outputs of its task."""
    task = metadata['task']
    if not isinstance(task, str) or task not in TASK_OUTPUTS:
        raise ReaderError(f'{path}: metadata task {task!r}, this reader '
                          f'knows {sorted(TASK_OUTPUTS)}')
    missing = [name for name in TASK_OUTPUTS[task] if name not in outputs]
    if sorted(inputs) != sorted(TASK_INPUTS[task]) or missing:
        raise ReaderError(
            f'{path}: its metadata says {task!r}, whose graph has the inputs '
            f'{list(TASK_INPUTS[task])} and the outputs '
            f'{list(TASK_OUTPUTS[task])}; this graph has the inputs '
            f'{inputs} and the outputs {outputs}')
    spec = metadata['preprocess']
    if not isinstance(spec, dict) or any(field not in spec
                                         for field in PREPROCESS_FIELDS):
        raise ReaderError(f'{path}: its preprocess metadata needs the '
                          f'fields {list(PREPROCESS_FIELDS)}')
    resize, pad = spec.get('resize'), spec.get('pad')
    checks = [
        ('bgr_to_rgb', spec['bgr_to_rgb'], _is_bool, 'true or false'),
        ('mean', spec['mean'], _three_numbers, '3 numbers'),
        ('std', spec['std'], lambda v: _three_numbers(v) and all(v),
         '3 numbers other than 0'),
        ('size_divisor', spec['size_divisor'], lambda v: _is_int(v, 1),
         'an int >= 1'),
        ('pad_value', spec['pad_value'], _is_number, 'a number'),
        ('resize', resize, lambda v: v is None or isinstance(v, dict),
         'null or an object'),
        ('pad', pad, lambda v: v is None or isinstance(v, dict),
         'null or an object'),
    ]
    if isinstance(resize, dict):
        checks += [
            ('resize.scale', resize.get('scale'), _two_sizes,
             '2 ints >= 1'),
            ('resize.keep_ratio', resize.get('keep_ratio'), _is_bool,
             'true or false'),
            ('resize.interpolation', resize.get('interpolation'),
             lambda v: isinstance(v, str) and v in INTERPOLATIONS,
             f'one of {sorted(INTERPOLATIONS)}'),
        ]
    if isinstance(pad, dict):
        checks += [
            ('pad.size', pad.get('size'), lambda v: v is None or
             _two_sizes(v), 'null or 2 ints >= 1'),
            ('pad.size_divisor', pad.get('size_divisor'),
             lambda v: v is None or _is_int(v, 0), 'null or an int >= 0'),
            ('pad.pad_to_square', pad.get('pad_to_square'), _is_bool,
             'true or false'),
            ('pad.value', pad.get('value'),
             lambda v: _is_number(v) or _three_numbers(v),
             'a number or 3 numbers'),
        ]
    if task == 'instance':
        checks.append(('mask_threshold', metadata.get('mask_threshold'),
                       _is_number, 'a number'))
    checks.append(('precision', metadata.get('precision', {}),
                   lambda v: isinstance(v, dict) and v.get(
                       'type', 'float32') in PRECISIONS,
                   f'an object whose type is one of {list(PRECISIONS)}'))
    checks.append(('classes', metadata.get('classes', []),
                   lambda v: isinstance(v, list) and all(
                       isinstance(name, str) for name in v),
                   'a list of names'))
    for name, value, valid, what in checks:
        if not valid(value):
            raise ReaderError(f'{path}: its metadata {name}='
                              f'{json.dumps(value)[:40]} is not {what}')


def describe_precision(metadata: Dict) -> str:
    """What the file runs in, from its ``precision`` metadata: ``float32``,
    or ``int8`` and the parts quantized."""
    precision = metadata.get('precision') or {}
    if precision.get('type', 'float32') != 'int8':
        return 'float32'
    parts = precision.get('parts') or []
    return f"int8 {' + '.join(str(part) for part in parts)}".strip()


def _is_bool(value) -> bool:
    return type(value) is bool


def _is_number(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _is_int(value, least: int) -> bool:
    return type(value) is int and value >= least


def _three_numbers(value) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(
        _is_number(item) for item in value)


def _two_sizes(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(
        _is_int(item, 1) for item in value)


def image_size(data: bytes) -> Tuple[str, int, int]:
    """The format, width and height that a PNG, JPEG or BMP file's headers
    give, read without decoding it.

    Raises:
        ReaderError: if the file is none of them, or its headers or data
            are cut short (a truncated file decodes silently, in part).
    """
    if data.startswith(b'\x89PNG\r\n\x1a\n'):
        return ('PNG', ) + _png_size(data)
    if data.startswith(b'\xff\xd8'):
        return ('JPEG', ) + _jpeg_size(data)
    if data.startswith(b'BM') and len(data) >= 26:
        return ('BMP', ) + _bmp_size(data)
    raise ReaderError('not a PNG, JPEG or BMP image')


def _png_size(data: bytes) -> Tuple[int, int]:
    position, size = 8, None
    while position + 8 <= len(data):
        length, kind = struct.unpack_from('>I4s', data, position)
        if kind == b'IHDR' and length >= 8:
            size = struct.unpack_from('>II', data, position + 8)
        if kind == b'IEND':
            if size is None:
                raise ReaderError('a PNG without an IHDR chunk')
            return size
        position += 12 + length  # length, type, data, CRC
    raise ReaderError('a truncated PNG: it ends before its IEND chunk')


# JPEG markers with no length field: TEM, RST0-7, SOI.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8}
# Start-of-frame markers (baseline, progressive, ...), which give the size.
_JPEG_FRAMES = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> Tuple[int, int]:
    """Walk the segments and the entropy-coded scans up to the EOI marker,
    which a truncated JPEG lacks."""
    position, size = 2, None
    while True:
        position = data.find(b'\xff', position)
        if position < 0 or position + 1 >= len(data):
            break
        marker = data[position + 1]
        if marker in (0x00, 0xFF) or marker in _JPEG_STANDALONE:
            position += 1 if marker == 0xFF else 2  # fill, stuffing, RSTn
            continue
        if marker == 0xD9:  # EOI
            if size is None:
                raise ReaderError('a JPEG without a frame header')
            return size
        if position + 4 > len(data):
            break
        length = struct.unpack_from('>H', data, position + 2)[0]
        if marker in _JPEG_FRAMES and length >= 7 and \
                position + 9 <= len(data):
            height, width = struct.unpack_from('>HH', data, position + 5)
            size = width, height
        position += 2 + length  # a scan's entropy-coded data follows SOS
    raise ReaderError('a truncated JPEG: it ends before its EOI marker')


def _bmp_size(data: bytes) -> Tuple[int, int]:
    declared, = struct.unpack_from('<I', data, 2)
    header, = struct.unpack_from('<I', data, 14)
    if header == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack_from('<HH', data, 18)
    else:
        width, height = struct.unpack_from('<ii', data, 18)
    if len(data) < declared:
        raise ReaderError(f'a truncated BMP: {len(data)} of its {declared} '
                          f'bytes')
    return abs(width), abs(height)


def read_image(path: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The image at ``path`` as a BGR uint8 array, as ``cv2.imread`` reads
    it, once its headers show it whole and within ``max_pixels``.

    Raises:
        ReaderError: naming the file and what is wrong with it.
    """
    if not osp.isfile(path):
        raise ReaderError(f'Image not found: {path!r}')
    with open(path, 'rb') as file:
        data = file.read()
    try:
        kind, width, height = image_size(data)
    except ReaderError as err:
        raise ReaderError(f'Cannot read the image {path}: {err}') from None
    except struct.error:
        raise ReaderError(f'Cannot read the image {path}: its headers are '
                          f'cut short') from None
    if width * height > max_pixels:
        raise ReaderError(
            f'The image {path} is a {width}x{height} {kind} '
            f'({width * height / 1e6:.1f} megapixels), more than the limit '
            f'of {max_pixels / 1e6:g}; raise it with --max-pixels')
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    # A JPEG's EXIF orientation may turn it, as cv2.imread does.
    if image is None or image.shape[:2] not in ((height, width),
                                                (width, height)):
        raise ReaderError(f'Cannot read the image {path}: OpenCV cannot '
                          f'decode it as the {width}x{height} {kind} its '
                          f'headers describe')
    return image


def check_resizable(path: str, image: np.ndarray, spec: Dict) -> None:
    """Refuse an image that the test pipeline's resize would shrink to no
    pixels on a side (an aspect ratio above the resize scale's, e.g.
    1333:1 for (1333, 800))."""
    resize = spec.get('resize')
    if not resize or not resize.get('keep_ratio'):
        return
    height, width = image.shape[:2]
    new_width, new_height = rescaled_size(width, height, resize['scale'])
    if min(new_width, new_height) < 1:
        raise ReaderError(
            f'The image {path} is {width}x{height}: resized to fit '
            f'{tuple(resize["scale"])} it would be {new_width}x{new_height} '
            f'pixels; crop it to a less elongated shape')


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
    parser.add_argument('image', help='a PNG, JPEG or BMP image')
    parser.add_argument(
        'model', help='an ONNX file from tools/export_onnx.py --end-to-end')
    parser.add_argument(
        '--out',
        required=True,
        help='the image to write, of a format OpenCV writes (.png, .jpg)')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='draw detections scoring at least this (default 0.3)')
    parser.add_argument(
        '--backend',
        choices=BACKENDS,
        default='onnxruntime',
        help='the runtime (default onnxruntime; openvino needs the '
        'openvino package)')
    parser.add_argument(
        '--max-pixels',
        type=int,
        default=MAX_PIXELS,
        help=f'refuse larger images before decoding them (default '
        f'{MAX_PIXELS})')
    return parser.parse_args(argv)


def check_output(path: str) -> None:
    """Refuse an ``--out`` that ``cv2.imwrite`` would fail on, before the
    model runs."""
    if not cv2.haveImageWriter(path):
        raise ReaderError(f'--out {path!r}: OpenCV writes no image format '
                          f'of that extension; use .png or .jpg')
    if not osp.isdir(osp.dirname(osp.abspath(path))):
        raise ReaderError(f'--out {path!r}: its folder does not exist')


def main(argv=None):
    args = parse_args(argv)
    try:
        check_output(args.out)
        image = read_image(args.image, args.max_pixels)
        runtime, metadata = load_model(args.model, args.backend)
        check_resizable(args.image, image, metadata['preprocess'])
    except ReaderError as err:
        sys.exit(f'{osp.basename(sys.argv[0])}: error: {err}')
    print(f'{args.model}: {describe_precision(metadata)} with '
          f'{args.backend}')
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
