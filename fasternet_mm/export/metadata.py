"""What a reader of an end-to-end file needs besides the graph, stored in
the file's ``metadata_props``: the task, the classes and the preprocessing
(the test pipeline's resize and padding, the data preprocessor's channel
order, mean, std and padding). A test pipeline that the reader cannot
reproduce is refused by name."""
import json
from typing import Dict, List

from torch import nn

from ..errors import ExportError
from .segmentors import SegmentorGraph

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
    std, padding size divisor and value), ``mask_threshold`` and
    ``precision`` (``{"type": "float32"}``; an int8 file's is written by
    :func:`~fasternet_mm.export.quantization.quantize_end_to_end`)."""
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
        task = 'instance' if getattr(graph, 'with_mask', False) else \
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
        preprocess=preprocess,
        precision=dict(type='float32'))
    if task == 'instance':
        rcnn = cfg.model.test_cfg.rcnn
        metadata['mask_threshold'] = float(rcnn.get('mask_thr_binary', 0.5))
    return {key: json.dumps(value) for key, value in metadata.items()}
