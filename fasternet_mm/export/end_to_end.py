"""End-to-end ONNX graphs of mmdet detectors and mmseg segmentors: image in,
detections or a label map out, in standard ONNX operators only.

:func:`end_to_end_graph` wraps a model (in deploy form, eval mode) in a
module whose trace holds the whole post-processing of the model's
``predict``: decoding the head's maps, the test config's score threshold,
top-k and NMS (ONNX ``NonMaxSuppression``), and for a two-stage detector the
proposals, the multi-level RoI features (ONNX ``RoiAlign``) and the second
stage. :func:`export_end_to_end` writes it with opset 17 and stores in the
file's ``metadata_props`` what a reader needs to prepare an image and read
the outputs (:func:`~fasternet_mm.export.reader_metadata`);
``tools/onnx_demo.py`` is such a reader, with onnxruntime, numpy and
OpenCV only. :func:`export_and_check_end_to_end` does all of it for a
config and checks the file.

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
import os
import tempfile
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from ..errors import ExportError
from .check import ExportCheck, check_end_to_end, compare_files, other_size
from .detectors import DenseDetectorGraph, TwoStageDetectorGraph
from .metadata import reader_metadata
from .model import (build_deploy_model, is_segmentor, is_two_stage,
                    trace_to_onnx)
from .quantization import (DEFAULT_PARTS, CalibrationImages,
                           describe_precision, quantize_end_to_end)
from .segmentors import SegmentorGraph


def end_to_end_graph(model: nn.Module) -> nn.Module:
    """The end-to-end module of an mmdet detector or mmseg segmentor (in
    deploy form, eval mode); :class:`ExportError` names what cannot be
    exported."""
    if is_segmentor(model):
        return SegmentorGraph(model)
    if is_two_stage(model):
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


@dataclass(frozen=True)
class Quantization:
    """How :func:`export_and_check_end_to_end` makes an int8 file.

    Args:
        paths (Sequence[str]): The calibration images.
        prepare (Callable): From an image's path and the file's
            ``preprocess`` metadata to every input a graph may take, by
            name, as the reader makes them.
        parts (Sequence[str]): The parts quantized
            (:data:`~fasternet_mm.export.quantization.QUANTIZABLE_PARTS`).
            Defaults to the backbone and the neck.
        reduce_range (bool, optional): 7-bit weights. Defaults to None:
            where this CPU lacks VNNI.
        quantizer (str): ``'onnxruntime'``, or ``'nncf'`` for OpenVINO.
            Defaults to ``'onnxruntime'``.
    """

    paths: Sequence[str]
    prepare: Callable[[str, Dict], Dict]
    parts: Sequence[str] = field(default=DEFAULT_PARTS)
    reduce_range: Optional[bool] = None
    quantizer: str = 'onnxruntime'


def export_and_check_end_to_end(cfg,
                                path: str,
                                shape: Sequence[int],
                                checkpoint: Optional[str] = None,
                                opset: int = 17,
                                int8: Optional[Quantization] = None
                                ) -> ExportCheck:
    """Export the model of ``cfg`` with the weights of ``checkpoint``
    (random ones without it) end to end to ``path``, traced at ``shape``
    (H, W), with the reader's metadata, and check the file at another size
    than the traced one (:func:`~fasternet_mm.export.check.check_end_to_end`;
    with random weights, a disagreement is excused). With ``int8``, the
    float32 file is checked, then quantized into ``path``
    (:func:`~fasternet_mm.export.quantization.quantize_end_to_end`), and
    the int8 file's detections are reported against the float32 file's."""
    graph = end_to_end_graph(build_deploy_model(cfg, checkpoint))
    metadata = reader_metadata(cfg, graph)
    inputs = example_inputs(graph, other_size(shape), seed=1)
    if int8 is None:
        export_end_to_end(graph, path, shape, metadata, opset)
        return check_end_to_end(path, graph, inputs, checkpoint is None)
    spec = json.loads(metadata['preprocess'])
    calibration = CalibrationImages(
        int8.paths, lambda image: int8.prepare(image, spec),
        input_names(graph))
    with tempfile.TemporaryDirectory() as folder:
        fp32_path = os.path.join(folder, 'float32.onnx')
        export_end_to_end(graph, fp32_path, shape, metadata, opset)
        check = check_end_to_end(fp32_path, graph, inputs, checkpoint is None)
        precision = quantize_end_to_end(fp32_path, path, calibration,
                                        int8.parts, int8.reduce_range,
                                        int8.quantizer)
        agreement = compare_files(path, fp32_path, inputs)
    described = describe_precision(precision)
    return replace(
        check,
        path=path,
        file_bytes=os.path.getsize(path),
        comparison=f'float32 file: {check.comparison}; {described}: '
        f'{agreement}')
