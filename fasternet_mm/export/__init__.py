"""ONNX export of deployed FasterNet models, checked with onnxruntime.

- :mod:`.model`: a backbone (:func:`export_onnx`), or a whole detector or
  segmentor as its raw outputs (:func:`build_deploy_model`,
  :class:`TensorOutputs`, :func:`export_model_onnx`);
- :mod:`.end_to_end`: a whole detector or segmentor with its
  post-processing, image in and detections or a label map out
  (:func:`end_to_end_graph`, :func:`export_end_to_end`), built from
  :mod:`.ops` (NMS, RoIAlign), :mod:`.boxes` (box coding),
  :mod:`.detectors` and :mod:`.segmentors`, with what a reader needs in
  the file (:mod:`.metadata`);
- :mod:`.quantization`: int8 end-to-end files, statically quantized by
  onnxruntime in the parts that bear it (:func:`quantize_end_to_end`,
  :class:`CalibrationImages`);
- :mod:`.check`: onnxruntime against PyTorch, and the verdict
  (:class:`ExportCheck`) for every kind of export;
- :mod:`.evaluation`: a test set's metrics for a reader's predictions.

``export_and_check_backbone``, ``export_and_check_model`` and
``export_and_check_end_to_end`` export and check in one call, as
``tools/export_onnx.py`` does.
"""
from .boxes import clip_boxes, decode_deltas, decode_distances, grid_priors
from .check import (LABEL_AGREEMENT, SCORE_TOLERANCE, SIZE_OFFSET, TOLERANCE,
                    ExportCheck, check_end_to_end, check_outputs,
                    check_with_onnxruntime, compare_files,
                    compare_with_onnxruntime, other_size, relative_error)
from .detectors import DenseDetectorGraph, RoiFeatures, TwoStageDetectorGraph
from .end_to_end import (Quantization, end_to_end_graph, example_inputs,
                         export_and_check_end_to_end, export_end_to_end,
                         input_names, output_names)
from .evaluation import evaluate, load_reader
from .metadata import (INTERPOLATIONS, METADATA_FORMAT, PIPELINE_TRANSFORMS,
                       TRANSFORM_KEYS, reader_metadata)
from .model import (PARTS, TensorOutputs, build_deploy_model,
                    export_and_check_backbone, export_and_check_model,
                    export_model_onnx, export_onnx, trace_to_onnx)
from .ops import NmsSettings, NonMaxSuppression, RoiAlign, batched_nms, top_k
from .quantization import (DEFAULT_CALIBRATION_IMAGES, DEFAULT_PARTS,
                           QUANTIZABLE_PARTS, QUANTIZERS, CalibrationImages,
                           calibration_image_paths, quantize_end_to_end,
                           selected_nodes)
from .segmentors import SegmentorGraph

__all__ = [
    'CalibrationImages', 'DEFAULT_CALIBRATION_IMAGES', 'DEFAULT_PARTS',
    'DenseDetectorGraph', 'ExportCheck', 'INTERPOLATIONS', 'LABEL_AGREEMENT',
    'METADATA_FORMAT', 'NmsSettings', 'NonMaxSuppression', 'PARTS',
    'PIPELINE_TRANSFORMS', 'QUANTIZABLE_PARTS', 'QUANTIZERS', 'Quantization',
    'RoiAlign', 'RoiFeatures', 'SCORE_TOLERANCE', 'SIZE_OFFSET',
    'SegmentorGraph', 'TOLERANCE', 'TRANSFORM_KEYS', 'TensorOutputs',
    'TwoStageDetectorGraph', 'batched_nms', 'build_deploy_model',
    'calibration_image_paths', 'check_end_to_end', 'check_outputs',
    'check_with_onnxruntime', 'clip_boxes', 'compare_files',
    'compare_with_onnxruntime', 'decode_deltas', 'decode_distances',
    'end_to_end_graph', 'evaluate', 'example_inputs',
    'export_and_check_backbone', 'export_and_check_end_to_end',
    'export_and_check_model', 'export_end_to_end', 'export_model_onnx',
    'export_onnx', 'grid_priors', 'input_names', 'load_reader', 'other_size',
    'output_names', 'quantize_end_to_end', 'reader_metadata', 'relative_error',
    'selected_nodes', 'top_k', 'trace_to_onnx'
]
