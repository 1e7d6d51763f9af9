"""End-to-end ONNX detectors in onnxruntime against the deployed PyTorch
predict, on the CPU."""
import os.path as osp
import tempfile
from typing import Callable, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..deploy import switch_to_deploy
from ..end_to_end import end_to_end_graph, export_end_to_end
from ..model_utils import build_model, dummy_sample
from .detector import keep_all_boxes
from .timing import interleaved_medians


def onnx_section(report: dict,
                 cases: Sequence[Tuple[str, Sequence[int]]],
                 postprocess: Callable,
                 repeats: int = 5) -> None:
    """End to end on the CPU, fp32, batch 1, random weights: onnxruntime
    running the ``--end-to-end`` export of the detector of each config
    path in ``cases`` at its ``(H, W)`` against the deployed PyTorch
    model's ``predict``, on the same preprocessed input. For Mask R-CNN,
    predict pastes the masks into the image, so the ONNX side is also
    timed with the reader's pasting: ``postprocess(outputs, info,
    options)`` of ``tools/onnx_demo.py``. Under ``report['onnx']``."""
    import onnxruntime
    threads = torch.get_num_threads()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle onnxruntime threads would spin on the cores while PyTorch runs.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    names = [osp.splitext(osp.basename(path))[0] for path, _ in cases]
    timings, counts = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (path, shape) in zip(names, cases):
            cfg = keep_all_boxes(Config.fromfile(path))
            torch.manual_seed(0)
            model = switch_to_deploy(build_model(cfg))
            onnx_path = osp.join(tmp, f'{name}.onnx')
            export_end_to_end(end_to_end_graph(model), onnx_path, shape)
            runtime = onnxruntime.InferenceSession(
                onnx_path, options, providers=['CPUExecutionProvider'])
            outputs = [o.name for o in runtime.get_outputs()]
            image = torch.rand(1, 3, *shape)
            feed = {'image': image.numpy()}

            def pytorch(model=model, shape=shape, image=image):
                return model(
                    image, [dummy_sample('mmdet', *shape)], mode='predict')

            def ort(runtime=runtime, feed=feed):
                return runtime.run(None, feed)

            def ort_pasted(runtime=runtime,
                           feed=feed,
                           outputs=outputs,
                           shape=shape):
                results = dict(zip(outputs, runtime.run(None, feed)))
                info = dict(
                    image_shape=shape, ori_shape=shape, scale_factor=(1, 1))
                return postprocess(results, info,
                                   dict(task='instance', mask_threshold=0.5))

            timings[f'{name}/pytorch_predict'] = pytorch
            timings[f'{name}/onnxruntime'] = ort
            if 'masks' in outputs:
                timings[f'{name}/onnxruntime_and_paste'] = ort_pasted
            with torch.no_grad():
                counts[name] = dict(
                    pytorch=len(pytorch()[0].pred_instances),
                    onnxruntime=len(ort()[1]))
        with torch.no_grad():
            seconds = interleaved_medians(timings, repeats)
    report['onnx'] = dict(
        threads=threads,
        onnxruntime=onnxruntime.__version__,
        detections=counts,
        ms={k: v * 1e3
            for k, v in seconds.items()})
    print_log(f'\n== end to end, CPU fp32, batch 1, {threads} threads, '
              f'random weights (score_thr 0): onnxruntime '
              f'{onnxruntime.__version__} against the deployed PyTorch '
              f'predict ==')
    for name in names:
        base = seconds[f'{name}/pytorch_predict']
        print_log(f'{name}: detections {counts[name]}')
        for key, value in seconds.items():
            if key.startswith(f'{name}/'):
                print_log(f'  {key.split("/")[1]:24s} {value * 1e3:9.1f} ms'
                          f'   pytorch / this = {base / value:.2f}')
