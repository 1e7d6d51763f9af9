"""Checking an exported file: onnxruntime against the same module in
PyTorch. Files with dynamic sizes are checked at :func:`other_size`, so
that sizes the trace froze show.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from .segmentors import SegmentorGraph

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
