"""Evaluate an end-to-end ONNX model on a config's test set.

    python tools/test_onnx.py configs/demo/mask_rcnn_fasternet_t0_shapes.py \
        mask_rcnn.onnx

The model comes from ``tools/export_onnx.py --end-to-end``. Each image is
read, preprocessed, run with onnxruntime (or OpenVINO, ``--backend
openvino``) and post-processed by
``tools/onnx_demo.py``'s reader; the config's test evaluator scores the
predictions, as ``tools/test.py`` scores the PyTorch model's. The median
time of an image's prediction follows the metrics.
"""
import argparse
import os.path as osp
import statistics
import time

from mmengine.config import DictAction

from fasternet_mm.cli import exit_on_user_error, load_config
from fasternet_mm.errors import MissingFileError, PreflightError
from fasternet_mm.export.evaluation import evaluate, load_reader


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the config the model was exported '
                        'from (its test set and evaluator are used)')
    parser.add_argument('model', help='the end-to-end .onnx file')
    parser.add_argument(
        '--backend',
        choices=('onnxruntime', 'openvino'),
        default='onnxruntime',
        help='the runtime that runs the file (default onnxruntime)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.model):
        raise MissingFileError(f'Model not found: {args.model!r}')
    cfg = load_config(args.config, args.cfg_options, 'none', None)
    reader = load_reader()
    try:
        runtime, metadata = reader.load_model(args.model, args.backend)
    except reader.ReaderError as err:
        raise PreflightError(str(err)) from None
    scope = 'mmseg' if metadata['task'] == 'semantic' else 'mmdet'
    if scope != cfg.default_scope:
        raise PreflightError(
            f'{args.model} is a {metadata["task"]} model ({scope}), and '
            f'{args.config} an {cfg.default_scope} config: give the config '
            f'the model was exported from')
    print(f'{args.model}: {reader.describe_precision(metadata)} with '
          f'{args.backend}')
    seconds = []

    def predict(image):
        start = time.perf_counter()
        result = reader.predict(runtime, metadata, image)
        seconds.append(time.perf_counter() - start)
        return result

    metrics = evaluate(cfg, predict, log_interval=50)
    for name, value in metrics.items():
        print(f'{name}: {value}')
    if seconds:
        median = statistics.median(seconds) * 1e3
        print(f'{len(seconds)} images, median {median:.1f} ms each '
              f'(preprocessing, {args.backend} and mask pasting; not '
              f'reading the file)')
    return metrics


if __name__ == '__main__':
    main()
