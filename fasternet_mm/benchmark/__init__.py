"""FasterNet timed against its peers in one process, with ratios: the
sections of ``tools/benchmark.py``'s report, by topic.

- :mod:`.backbone`: the backbone against timm and ResNet-50, and a
  training step against timm (CPU).
- :mod:`.detector`: Mask R-CNN predict against ResNet-50's, the ``--amp``
  training step, and whole detectors of several configs (CPU).
- :mod:`.gpu`: deployed throughput, a training step and Mask R-CNN on a
  CUDA device.
- :mod:`.onnx`: end-to-end ONNX detectors in onnxruntime against the
  deployed PyTorch predict.
- :mod:`.timing`: how all of them time.

Each section adds its figures to a ``report`` dict under its own key and
prints them.
"""
from ..cpu import cpu_features, describe_cpu
from .timing import (autocast_run, dump_report, gemm_gflops,
                     interleaved_medians, saved_activation_bytes, top_kernels)

__all__ = [
    'autocast_run', 'cpu_features', 'describe_cpu', 'dump_report',
    'gemm_gflops', 'interleaved_medians', 'saved_activation_bytes',
    'top_kernels'
]
