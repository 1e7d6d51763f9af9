"""int8 end-to-end graphs: static quantization of the parts of an
end-to-end file (:mod:`.end_to_end`) that bear it.

:func:`quantize_end_to_end` inserts QuantizeLinear/DequantizeLinear pairs
(the QDQ format, weights per output channel) around the nodes of the parts
asked for (:data:`QUANTIZABLE_PARTS`: by default the backbone and the
neck), with activation ranges from calibration images
(:class:`CalibrationImages`), by onnxruntime's quantizer or by NNCF for
OpenVINO (:data:`QUANTIZERS`). The rest stays float32: box decoding, the
score threshold, ``NonMaxSuppression``, ``RoiAlign`` and the mask sigmoid,
whose nodes the graph's own ``forward`` holds.

Nodes are chosen by the module path that TorchScript export gives their
names (``/backbone/stages.0/blocks.0/spatial_mixing/Conv``). Without
VNNI, onnxruntime's uint8 x int8 kernels can saturate their 16-bit
intermediate sums; weights then keep 7 bits (``reduce_range``), as
onnxruntime advises.
"""
import json
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..errors import ExportError

# The scopes (first component of a node's name) of each part. Heads are
# quantized in their convolutions and linear layers only: their outputs
# feed the decoding and the mask sigmoid, which stay float32.
QUANTIZABLE_PARTS = dict(
    backbone=('backbone', ),
    neck=('neck', ),
    heads=('head', 'rpn_head', 'bbox_head', 'mask_head', 'decode_head',
           'auxiliary_head'))
HEAD_OPERATORS = ('Conv', 'ConvTranspose', 'Gemm', 'MatMul')
DEFAULT_PARTS = ('backbone', 'neck')
# Who quantizes, for which runtime: onnxruntime's quantize_static, or
# NNCF's post-training quantization for OpenVINO (the optional extra
# ``openvino``). Both write QDQ nodes into the same end-to-end file.
QUANTIZERS = dict(onnxruntime='onnxruntime', nncf='openvino')
DEFAULT_CALIBRATION_IMAGES = 32


def node_scope(name: str) -> str:
    """The module a TorchScript-exported node belongs to: the first
    component of its name (``'backbone'`` for
    ``/backbone/stages.0/Conv``), ``''`` for the graph's own nodes."""
    parts = name.strip('/').split('/')
    return parts[0] if len(parts) > 1 else ''


def check_parts(parts: Sequence[str]) -> List[str]:
    """``parts`` in :data:`QUANTIZABLE_PARTS` order; an unknown or missing
    part is refused by name."""
    unknown = [part for part in parts if part not in QUANTIZABLE_PARTS]
    if unknown or not parts:
        what = f'the part {unknown[0]!r}' if unknown else 'no part'
        raise ExportError(f'cannot quantize {what}; choose among '
                          f'{list(QUANTIZABLE_PARTS)}')
    return [part for part in QUANTIZABLE_PARTS if part in parts]


def selected_nodes(model, parts: Sequence[str]) -> List[str]:
    """The names of the nodes of ``model`` (an ``onnx.ModelProto``) in
    ``parts``; :class:`ExportError` if there are none (a graph not
    exported by TorchScript, whose names carry no module path)."""
    parts = check_parts(parts)
    names = []
    for node in model.graph.node:
        scope = node_scope(node.name)
        for part in parts:
            if scope in QUANTIZABLE_PARTS[part] and (
                    part != 'heads' or node.op_type in HEAD_OPERATORS):
                names.append(node.name)
    if not names:
        raise ExportError(f'no node of the graph is in {parts}: its node '
                          f'names carry no module path')
    return names


class CalibrationImages:
    """Graph inputs for onnxruntime's calibration, one image at a time: an
    ``onnxruntime.quantization.CalibrationDataReader``.

    Args:
        paths (Sequence): The images' paths (or whatever ``prepare``
            takes).
        prepare (Callable): From an image's path to every input a graph
            may take, by name, as the reader makes them
            (``tools/onnx_demo.py``'s ``read_image``, ``preprocess`` and
            ``graph_inputs``).
        input_names (Sequence[str]): The graph's inputs, which are fed.
    """

    def __init__(self, paths: Sequence,
                 prepare: Callable[[object], Dict[str, np.ndarray]],
                 input_names: Sequence[str]) -> None:
        if not len(paths):
            raise ExportError('no calibration image')
        self.paths = list(paths)
        self.prepare = prepare
        self.input_names = list(input_names)
        self._position = 0

    def __len__(self) -> int:
        return len(self.paths)

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        if self._position >= len(self.paths):
            return None
        inputs = self.prepare(self.paths[self._position])
        self._position += 1
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise ExportError(f'calibration inputs lack the graph input '
                              f'{missing[0]!r}')
        return {name: inputs[name] for name in self.input_names}

    def rewind(self) -> None:
        self._position = 0

    def set_range(self, start_index: int, end_index: int) -> None:
        self.paths = self.paths[start_index:end_index]
        self._position = 0


def calibration_image_paths(cfg, count: int) -> List[str]:
    """``count`` image paths, evenly spaced, from the training set of
    ``cfg`` (its validation set if it has no training set): images that
    the test set does not score."""
    from mmengine.registry import DATASETS, init_default_scope
    if count < 1:
        raise ExportError(f'calibration images: {count}; give at least 1')
    loader = cfg.get('train_dataloader') or cfg.get('val_dataloader')
    if not loader:
        raise ExportError('the config has no train_dataloader or '
                          'val_dataloader to take calibration images from')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    dataset_cfg = dict(loader['dataset'])
    dataset_cfg['pipeline'] = []
    dataset = DATASETS.build(dataset_cfg)
    while hasattr(dataset, 'dataset'):  # RepeatDataset and the like
        dataset = dataset.dataset
    total = len(dataset)
    if count > total:
        raise ExportError(f'calibration images: {count}, but the dataset '
                          f'has {total}')
    step = total / count
    return [
        dataset.get_data_info(int(index * step))['img_path']
        for index in range(count)
    ]


def describe_precision(precision: Dict) -> str:
    """A file's ``precision`` metadata in words."""
    if precision.get('type') != 'int8':
        return str(precision.get('type', 'float32'))
    bits = 7 if precision.get('reduce_range') else 8
    return (f"int8 {' + '.join(precision['parts'])} ({bits}-bit weights, "
            f"{precision['calibration_images']} calibration images)")


def reduce_range_needed() -> bool:
    """Whether this CPU lacks VNNI (or its flags cannot be read): then
    int8 weights keep 7 bits."""
    from ..cpu import cpu_features
    return not cpu_features()['vnni']


def _nncf_quantize(model, calibration: CalibrationImages,
                   nodes: Sequence[str]):
    """``model`` quantized by NNCF for OpenVINO in ``nodes`` only
    (NNCF's default performance preset: symmetric int8 weights per output
    channel and activations per tensor, fast bias correction), calibrated
    on ``calibration``."""
    try:
        import nncf
    except ImportError:
        raise ExportError('--quantizer nncf needs the openvino extra: pip '
                          'install -e .[openvino]') from None
    from nncf.common.logging import nncf_logger
    nncf_logger.setLevel('WARNING')  # a line per node it leaves alone
    chosen = set(nodes)
    ignored = [node.name for node in model.graph.node
               if node.name not in chosen]
    calibration.rewind()
    feeds = list(iter(calibration.get_next, None))
    return nncf.quantize(
        model,
        nncf.Dataset(feeds),
        subset_size=len(feeds),
        fast_bias_correction=True,
        ignored_scope=nncf.IgnoredScope(names=ignored, validate=False))


def quantize_end_to_end(fp32_path: str,
                        path: str,
                        calibration: CalibrationImages,
                        parts: Sequence[str] = DEFAULT_PARTS,
                        reduce_range: Optional[bool] = None,
                        quantizer: str = 'onnxruntime') -> Dict:
    """Write ``fp32_path`` (an end-to-end file) to ``path`` with the nodes
    of ``parts`` statically quantized, calibrated on ``calibration``.

    With ``quantizer='onnxruntime'``: QDQ, uint8 activations, int8 weights
    per output channel (7-bit with ``reduce_range``, by default where this
    CPU lacks VNNI), activation ranges by min and max. With ``'nncf'``:
    NNCF's post-training quantization for OpenVINO, also QDQ. The file
    keeps the metadata of ``fp32_path`` and gains ``precision``; returns
    that entry."""
    import onnx
    parts = check_parts(parts)
    if quantizer not in QUANTIZERS:
        raise ExportError(f'quantizer {quantizer!r}: choose among '
                          f'{list(QUANTIZERS)}')
    model = onnx.load(fp32_path)
    nodes = selected_nodes(model, parts)
    if quantizer == 'nncf':
        reduce_range = False
        onnx.save(_nncf_quantize(model, calibration, nodes), path)
    else:
        from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                              QuantType, quantize_static)
        if reduce_range is None:
            reduce_range = reduce_range_needed()
        quantize_static(
            model,
            path,
            calibration,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=nodes,
            calibrate_method=CalibrationMethod.MinMax)
    precision = dict(
        type='int8',
        runtime=QUANTIZERS[quantizer],
        parts=parts,
        calibration_images=len(calibration),
        reduce_range=bool(reduce_range))
    quantized = onnx.load(path)
    del quantized.metadata_props[:]
    for entry in model.metadata_props:
        if entry.key != 'precision':
            quantized.metadata_props.add(key=entry.key, value=entry.value)
    quantized.metadata_props.add(key='precision',
                                 value=json.dumps(precision))
    onnx.save(quantized, path)
    return precision
