"""End-to-end ONNX detectors in onnxruntime against the deployed PyTorch
predict, on the CPU."""
import os.path as osp
import tempfile
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from torch import nn

from ..deploy import switch_to_deploy
from ..export import end_to_end_graph, export_end_to_end, trace_to_onnx
from ..model_utils import build_model, dummy_sample
from ..testing import randomize_norms
from .detector import keep_all_boxes
from .timing import interleaved_medians

# The detections of the two regimes timed: none (every score threshold
# above any score: the post-processing and the mask head see no box), and
# each model's max_per_img (BatchNorms randomised so that scores spread,
# thresholds at 0), as a trained model on a busy image gives.
REGIMES = ('no_detections', 'max_detections')


class _Features(nn.Module):
    """A detector's backbone and neck, for timing them apart."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.detector.extract_feat(image))


def _detector(path: str, regime: str) -> nn.Module:
    cfg = Config.fromfile(path)
    torch.manual_seed(0)
    if regime == 'no_detections':
        test_cfg = cfg.model.test_cfg
        for part in (test_cfg, test_cfg.get('rcnn')):
            if part is not None and 'score_thr' in part:
                part.score_thr = 1.0
        return switch_to_deploy(build_model(cfg))
    model = randomize_norms(build_model(keep_all_boxes(cfg)))
    return switch_to_deploy(model)


def _session(path: str, threads: int):
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle onnxruntime threads would spin on the cores while PyTorch runs.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return onnxruntime.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def onnx_section(report: dict,
                 cases: Sequence[Tuple[str, Sequence[int]]],
                 postprocess: Callable,
                 repeats: int = 5) -> None:
    """End to end on the CPU, fp32, batch 1, random weights: onnxruntime
    running the ``--end-to-end`` export of the detector of each config
    path in ``cases`` at its ``(H, W)`` against the deployed PyTorch
    model's ``predict``, on the same preprocessed input, with no
    detections and with ``max_per_img`` of them (:data:`REGIMES`); the
    backbone and neck alone in both. For Mask R-CNN, predict pastes the
    masks into the image, so the ONNX side is also timed with the reader's
    pasting: ``postprocess(outputs, info, options)`` of
    ``tools/onnx_demo.py``. Under ``report['onnx']``."""
    import onnxruntime
    threads = torch.get_num_threads()
    names = [osp.splitext(osp.basename(path))[0] for path, _ in cases]
    timings: Dict[str, Callable] = {}
    counts: Dict[str, Dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (path, shape) in zip(names, cases):
            image = torch.rand(1, 3, *shape)
            feed = dict(
                image=image.numpy(),
                image_size=np.array(shape, np.int64),
                scale_factor=np.ones(2, np.float32))
            for regime in REGIMES:
                model = _detector(path, regime)
                onnx_path = osp.join(tmp, f'{name}_{regime}.onnx')
                export_end_to_end(end_to_end_graph(model), onnx_path, shape)
                runtime = _session(onnx_path, threads)
                outputs = [o.name for o in runtime.get_outputs()]

                def pytorch(model=model, shape=shape, image=image):
                    return model(
                        image, [dummy_sample('mmdet', *shape)],
                        mode='predict')

                def ort(runtime=runtime, feed=feed):
                    return runtime.run(None, feed)

                def ort_pasted(runtime=runtime,
                               feed=feed,
                               outputs=outputs,
                               shape=shape):
                    results = dict(zip(outputs, runtime.run(None, feed)))
                    info = dict(
                        image_shape=shape,
                        ori_shape=shape,
                        scale_factor=(1, 1))
                    return postprocess(
                        results, info, dict(task='instance',
                                            mask_threshold=0.5))

                key = f'{name}/{regime}'
                timings[f'{key}/pytorch_predict'] = pytorch
                timings[f'{key}/onnxruntime'] = ort
                if 'masks' in outputs:
                    timings[f'{key}/onnxruntime_and_paste'] = ort_pasted
                with torch.no_grad():
                    counts[key] = dict(
                        pytorch=len(pytorch()[0].pred_instances),
                        onnxruntime=len(ort()[1]))
            features = _Features(model).eval()
            features_path = osp.join(tmp, f'{name}_features.onnx')
            trace_to_onnx(features, image, features_path, None,
                          None, 17)
            runtime = _session(features_path, threads)
            timings[f'{name}/features/pytorch'] = \
                lambda features=features, image=image: features(image)
            timings[f'{name}/features/onnxruntime'] = \
                lambda runtime=runtime, feed=feed: runtime.run(
                    None, dict(image=feed['image']))
        with torch.no_grad():
            seconds = interleaved_medians(timings, repeats)
    report['onnx'] = dict(
        threads=threads,
        onnxruntime=onnxruntime.__version__,
        detections=counts,
        ms={k: v * 1e3
            for k, v in seconds.items()})
    print_log(f'\n== end to end, CPU fp32, batch 1, {threads} threads, '
              f'random weights: onnxruntime {onnxruntime.__version__} '
              f'against the deployed PyTorch predict ==')
    for name in names:
        for part in REGIMES + ('features', ):
            prefix = f'{name}/{part}'
            base = seconds[f'{prefix}/pytorch' if part == 'features' else
                           f'{prefix}/pytorch_predict']
            what = 'backbone + neck only' if part == 'features' else \
                f'detections {counts[prefix]}'
            print_log(f'{prefix}: {what}')
            for key, value in seconds.items():
                if key.startswith(f'{prefix}/'):
                    print_log(f'  {key.split("/")[-1]:24s} '
                              f'{value * 1e3:9.1f} ms   pytorch / this = '
                              f'{base / value:.2f}')
