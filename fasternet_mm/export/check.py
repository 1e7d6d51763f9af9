"""Checking an exported file: onnxruntime against the same module in
PyTorch, and whether they agree well enough.

One decision for every export: raw outputs (a backbone's features, a
model's ``mode='tensor'`` outputs, a part) agree to a relative error of
:data:`TOLERANCE`; an end-to-end detector's sorted scores to
:data:`SCORE_TOLERANCE`, with the same number of detections; an end-to-end
segmentor's label map on :data:`LABEL_AGREEMENT` of the pixels. Files with
dynamic sizes are checked at :func:`other_size`, so that sizes the trace
froze show.
"""
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..complexity import weight_bytes
from ..errors import ExportError
from .segmentors import SegmentorGraph

# onnxruntime against PyTorch: raw outputs (relative error), end-to-end
# detection scores (absolute), end-to-end label maps (fraction of pixels
# with the same label).
TOLERANCE = 1e-4
SCORE_TOLERANCE = 1e-3
LABEL_AGREEMENT = 0.999
# How much taller and wider than the traced input a dynamic file is checked.
SIZE_OFFSET = (32, 64)


def other_size(shape: Sequence[int]) -> Tuple[int, int]:
    """The (height, width) at which a file traced at ``shape`` is checked:
    :data:`SIZE_OFFSET` larger."""
    return (shape[0] + SIZE_OFFSET[0], shape[1] + SIZE_OFFSET[1])


def relative_error(outputs: Sequence[Tensor],
                   reference: Sequence[Tensor]) -> float:
    """Largest ``|a - b| / max |b|`` over matching tensors, in float32."""
    return max(
        float((a.float() - b.float()).abs().max() /
              b.float().abs().max().clamp(min=1e-12))
        for a, b in zip(outputs, reference))


def flatten_outputs(name: str, outputs) -> List[Tuple[str, Tensor]]:
    """``(name, tensor)`` pairs of nested tuples, lists and dicts; a
    position or key extends the name: ``output_1_0``, ``rpn_cls_score_2``."""
    if isinstance(outputs, Tensor):
        return [(name, outputs)]
    if isinstance(outputs, dict):
        items = outputs.items()
    elif isinstance(outputs, (list, tuple)):
        items = enumerate(outputs)
    else:
        raise TypeError(f'{name}: cannot export a {type(outputs).__name__} '
                        f'output; only tensors in tuples, lists and dicts')
    return [
        pair for key, value in items
        for pair in flatten_outputs(f'{name}_{key}', value)
    ]


def run_onnxruntime(path: str, inputs: Dict[str, Tensor]) -> list:
    """The outputs (numpy arrays) of ``path`` run with onnxruntime on the
    CPU for the named ``inputs``."""
    import onnxruntime
    runtime = onnxruntime.InferenceSession(
        path, providers=['CPUExecutionProvider'])
    return runtime.run(
        None, {name: value.numpy()
               for name, value in inputs.items()})


def check_with_onnxruntime(path, image, outputs):
    """Largest relative difference between onnxruntime and PyTorch over all
    ``outputs`` (tensors, possibly nested in tuples, lists and dicts, in the
    order of the ONNX outputs); inf if their number or shapes differ."""
    results = [
        torch.from_numpy(result)
        for result in run_onnxruntime(path, dict(image=image))
    ]
    expected = [tensor for _, tensor in flatten_outputs('output', outputs)]
    if len(results) != len(expected) or any(
            r.shape != e.shape for r, e in zip(results, expected)):
        return float('inf')
    return relative_error(results, expected)


def compare_with_onnxruntime(path: str, graph: nn.Module,
                             inputs: Dict[str, Tensor]) -> Dict[str, float]:
    """Run ``path`` with onnxruntime and ``graph`` in PyTorch on ``inputs``
    (as :func:`~fasternet_mm.export.example_inputs` gives them).

    For a detector: the detection counts of both (``onnx``, ``pytorch``)
    and the largest difference of their sorted scores (``score``; inf
    where the counts differ), which ties among equal scores do not change;
    for a segmentor: the fraction of pixels with the same label
    (``agreement``)."""
    outputs = run_onnxruntime(path, inputs)
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


def compare_files(path: str, reference: str,
                  inputs: Dict[str, Tensor]) -> str:
    """Two end-to-end files run with onnxruntime on the same ``inputs``,
    in words: a detector's detection counts and how far apart their
    sorted scores are, a segmentor's share of pixels with the same
    label."""
    outputs = run_onnxruntime(path, inputs)
    expected = run_onnxruntime(reference, inputs)
    if len(outputs) == 1:
        same = outputs[0] == expected[0]
        share = float(same.mean()) if same.size else 0.
        return f'same label as float32 for {share:.2%} of the pixels'
    scores = np.sort(outputs[1])[::-1]
    reference_scores = np.sort(expected[1])[::-1]
    common = min(len(scores), len(reference_scores))
    gap = float(np.abs(scores[:common] - reference_scores[:common]).max(
        initial=0.))
    return (f'{len(scores)} detections against float32\'s '
            f'{len(reference_scores)}, the first {common} sorted scores '
            f'within {gap:.3f}')


@dataclass(frozen=True)
class ExportCheck:
    """What checking a written file found, and the verdict.

    Args:
        path (str): The file.
        file_bytes (int): Its size.
        weight_bytes (int): The fp32 size of the exported module's weights.
        comparison (str): onnxruntime against PyTorch, in words.
        failure (str, optional): Why the file is wrong; None if it passed.
        excuse (str, optional): Why a failure is no error. Defaults to None.
    """

    path: str
    file_bytes: int
    weight_bytes: int
    comparison: str
    failure: Optional[str]
    excuse: Optional[str] = None

    @property
    def passed(self) -> bool:
        return self.failure is None

    def lines(self) -> List[str]:
        """The report: the file's size against its weights' and the
        comparison; then the excuse of an excused failure."""
        size, weights = self.file_bytes, self.weight_bytes
        lines = [
            f'{self.path}: {size / 2**20:.1f} MiB for '
            f'{weights / 2**20:.1f} MiB of fp32 weights '
            f'({size / weights:.3f}x); {self.comparison}'
        ]
        if self.failure is not None and self.excuse is not None:
            lines.append(f'({self.excuse})')
        return lines

    def raise_if_failed(self) -> None:
        """Raise :class:`ExportError` for a failure without an excuse."""
        if self.failure is not None and self.excuse is None:
            raise ExportError(self.failure)


def check_outputs(path: str, module: nn.Module, image: Tensor, outputs,
                  traced_shape: Sequence[int]) -> ExportCheck:
    """Check the raw outputs of ``path``, exported from ``module`` traced
    at ``traced_shape``, against the PyTorch ``outputs`` for ``image``
    (from :func:`~fasternet_mm.export.export_onnx` or
    :func:`~fasternet_mm.export.export_model_onnx`): at most
    :data:`TOLERANCE` relative error."""
    error = check_with_onnxruntime(path, image, outputs)
    failure = None
    if error > TOLERANCE:
        other = tuple(image.shape[2:]) != tuple(traced_shape)
        failure = (f'{path} disagrees with PyTorch: max relative error '
                   f'{error:.2e} > {TOLERANCE:.0e}' +
                   (' at another input size; export without --dynamic'
                    if other else ''))
    return ExportCheck(
        path=path,
        file_bytes=os.path.getsize(path),
        weight_bytes=weight_bytes(module),
        comparison='onnxruntime vs PyTorch: max relative error '
        f'{error:.2e}',
        failure=failure)


def check_end_to_end(path: str, graph: nn.Module, inputs: Dict[str, Tensor],
                     random_weights: bool) -> ExportCheck:
    """Check the end-to-end file ``path`` of ``graph`` on ``inputs``
    (:func:`compare_with_onnxruntime`): a segmentor's labels agree on
    :data:`LABEL_AGREEMENT` of the pixels, a detector's sorted scores to
    :data:`SCORE_TOLERANCE`. With ``random_weights`` a failure is excused:
    their saturated scores tie, and NMS may break ties either way."""
    check = compare_with_onnxruntime(path, graph, inputs)
    if 'agreement' in check:
        agreement = f'same label for {check["agreement"]:.4%} of the pixels'
        failed = check['agreement'] < LABEL_AGREEMENT
    else:
        agreement = (f'{check["onnx"]} and {check["pytorch"]} detections, '
                     f'sorted scores differ by at most {check["score"]:.1e}')
        failed = check['score'] > SCORE_TOLERANCE
    height, width = inputs['image'].shape[2:]
    at = f'{height}x{width}'
    return ExportCheck(
        path=path,
        file_bytes=os.path.getsize(path),
        weight_bytes=weight_bytes(graph),
        comparison=f'onnxruntime vs PyTorch at {at}: {agreement}',
        failure=f'{path} disagrees with PyTorch at {at}: {agreement}'
        if failed else None,
        excuse='random weights: not an error, ties among equal scores can '
        'be broken either way' if random_weights else None)
