"""Deprecated: the old home of the end-to-end ONNX export, which now lives
in :mod:`fasternet_mm.export`; this module re-exports its names."""
import warnings

from .export import (INTERPOLATIONS, METADATA_FORMAT, PIPELINE_TRANSFORMS,
                     TRANSFORM_KEYS, DenseDetectorGraph, NmsSettings,
                     NonMaxSuppression, RoiAlign, RoiFeatures, SegmentorGraph,
                     TwoStageDetectorGraph, batched_nms, clip_boxes,
                     compare_with_onnxruntime, decode_deltas, decode_distances,
                     end_to_end_graph, evaluate, example_inputs,
                     export_end_to_end, grid_priors, input_names, output_names,
                     reader_metadata, top_k)

warnings.warn(
    'fasternet_mm.end_to_end is deprecated; import its names from '
    'fasternet_mm.export',
    DeprecationWarning,
    stacklevel=2)

__all__ = [
    'DenseDetectorGraph', 'INTERPOLATIONS', 'METADATA_FORMAT', 'NmsSettings',
    'NonMaxSuppression', 'PIPELINE_TRANSFORMS', 'RoiAlign', 'RoiFeatures',
    'SegmentorGraph', 'TRANSFORM_KEYS', 'TwoStageDetectorGraph',
    'batched_nms', 'clip_boxes', 'compare_with_onnxruntime', 'decode_deltas',
    'decode_distances', 'end_to_end_graph', 'evaluate', 'example_inputs',
    'export_end_to_end', 'grid_priors', 'input_names', 'output_names',
    'reader_metadata', 'top_k'
]
