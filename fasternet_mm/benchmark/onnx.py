"""End-to-end ONNX detectors in onnxruntime against the deployed PyTorch
predict, on the CPU."""
import importlib.util
import os.path as osp
import tempfile
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from torch import nn

from ..deploy import switch_to_deploy
from ..export import (CalibrationImages, end_to_end_graph, export_end_to_end,
                      quantize_end_to_end, trace_to_onnx)
from ..model_utils import build_model, dummy_sample
from ..testing import randomize_norms
from .detector import keep_all_boxes
from .timing import interleaved_medians

# The detections of the two regimes timed: none (every score threshold
# above any score: the post-processing and the mask head see no box), and
# each model's max_per_img (BatchNorms randomised so that scores spread,
# thresholds at 0), as a trained model on a busy image gives.
REGIMES = ('no_detections', 'max_detections')
# Random images the int8 files are calibrated on (their weights are random
# too: the int8 timing, not its accuracy, is what counts here).
CALIBRATION_IMAGES = 2


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


def _openvino(path: str, threads: int):
    """``path`` compiled by OpenVINO for the CPU on ``threads`` threads, as
    a function of the feed."""
    import openvino
    compiled = openvino.Core().compile_model(
        path, 'CPU',
        dict(INFERENCE_NUM_THREADS=threads, PERFORMANCE_HINT='LATENCY'))
    request = compiled.create_infer_request()

    def run(feed):
        results = request.infer(feed)
        return [results[port] for port in compiled.outputs]

    return run


def _int8_file(path: str,
               feed: Dict[str, np.ndarray],
               quantizer: str = 'onnxruntime') -> str:
    """``path`` quantized as ``--int8`` does (backbone and neck) by
    ``quantizer``, calibrated on :data:`CALIBRATION_IMAGES` random images
    of ``feed``'s size."""
    generator = np.random.default_rng(0)

    def prepare(index):
        return dict(feed, image=generator.standard_normal(
            feed['image'].shape).astype(np.float32))

    int8_path = path.replace('.onnx', f'_{quantizer}_int8.onnx')
    quantize_end_to_end(
        path,
        int8_path,
        CalibrationImages(range(CALIBRATION_IMAGES), prepare, list(feed)),
        quantizer=quantizer)
    return int8_path


def onnx_section(report: dict,
                 cases: Sequence[Tuple[str, Sequence[int]]],
                 postprocess: Callable,
                 repeats: int = 5) -> None:
    """End to end on the CPU, fp32, batch 1, random weights: onnxruntime
    running the ``--end-to-end`` export of the detector of each config
    path in ``cases`` at its ``(H, W)`` against the deployed PyTorch
    model's ``predict``, on the same preprocessed input, with no
    detections and with ``max_per_img`` of them (:data:`REGIMES`); the
    int8 file of the same graph (``--int8``: backbone and neck) in both
    regimes; the backbone and neck alone in both. For Mask R-CNN, predict
    pastes the masks into the image, so the ONNX side is also timed with
    the reader's pasting: ``postprocess(outputs, info, options)`` of
    ``tools/onnx_demo.py``. Under ``report['onnx']``."""
    import onnxruntime
    threads = torch.get_num_threads()
    # OpenVINO (fp32, and int8 by NNCF) is timed where it is installed.
    with_openvino = importlib.util.find_spec('openvino') is not None
    if not with_openvino:
        print_log('OpenVINO not timed: the openvino package is not '
                  'installed (pip install -e .[openvino])')
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

                int8_runtime = _session(_int8_file(onnx_path, feed), threads)

                def ort_int8(runtime=int8_runtime, feed=feed):
                    return runtime.run(None, feed)

                openvino_runs = {}
                if with_openvino:
                    openvino_runs = dict(
                        openvino=_openvino(onnx_path, threads),
                        openvino_int8=_openvino(
                            _int8_file(onnx_path, feed, 'nncf'), threads))

                def ort_pasted(run=ort, outputs=outputs, shape=shape):
                    results = dict(zip(outputs, run()))
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
                timings[f'{key}/onnxruntime_int8'] = ort_int8
                if 'masks' in outputs:
                    timings[f'{key}/onnxruntime_and_paste'] = ort_pasted
                    timings[f'{key}/onnxruntime_int8_and_paste'] = \
                        lambda run=ort_int8, paste=ort_pasted: paste(run)
                for backend, run in openvino_runs.items():
                    timings[f'{key}/{backend}'] = \
                        lambda run=run, feed=feed: run(feed)
                with torch.no_grad():
                    counts[key] = dict(
                        pytorch=len(pytorch()[0].pred_instances),
                        onnxruntime=len(ort()[1]),
                        onnxruntime_int8=len(ort_int8()[1]),
                        **{backend: len(run(feed)[1])
                           for backend, run in openvino_runs.items()})
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
    print_log(f'\n== end to end, CPU fp32 and int8, batch 1, {threads} '
              f'threads, random weights: onnxruntime '
              f'{onnxruntime.__version__} against the deployed PyTorch '
              f'predict ==')
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
                    line = (f'  {key.split("/")[-1]:28s} {value * 1e3:9.1f} '
                            f'ms   pytorch / this = {base / value:.2f}')
                    float_key = key.replace('_int8', '')
                    if float_key != key:
                        line += (f'   float32 / this = '
                                 f'{seconds[float_key] / value:.2f}')
                    print_log(line)
