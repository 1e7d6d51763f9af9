"""Time FasterNet against its peers in one process and print ratios.

First prints the CPU's features (AVX2, AVX-512, VNNI, AMX, avx512_bf16,
torch's capability) and writes them under ``cpu`` in the report; on a CPU
without native bf16 the bf16 timing is skipped, with a line saying why.
Measures this machine's fp32 roofline (the best of oneDNN's 1x1 conv and
``torch.mm`` at saturating shapes, beside the nominal FMA peak). Compares,
at batch 1: (a) our backbone in training form (eval mode), (b) the
same after ``switch_to_deploy()``, (c) timm's ``fasternet_*`` with the same
weights through ``forward_intermediates``, (d) mmdet's ResNet-50; then bf16
autocast, one training step against timm (at ``--train-shape``), and full
Mask R-CNN predict with FasterNet deployed against ResNet-50 as built
(``--full`` adds FasterNet as built and ResNet-50 with the same RoIAlign
swap; bf16 heads where bf16 is native). ``--full`` also runs the training
step at the last ``--shape``: about 4 minutes on 2 cores, against under 3
by default. Each section's
wall time and the total are printed and written under ``wall_s``.
With CUDA: deployed fp16/bf16 throughput at batch 32 and 256 against timm
in NCHW and channels-last, the kernels that take the most time, a backbone
training step against timm, and Mask R-CNN predict and training step
against ResNet-50 (``--gpu-only`` for that alone). Writes JSON and
plots. ``--onnx`` instead times end-to-end ONNX detectors in onnxruntime,
fp32 and int8 (and OpenVINO, fp32 and int8 by NNCF, where it is installed),
against the deployed PyTorch predict on the CPU. The sections live in
``fasternet_mm.benchmark``; this tool picks them from its flags and writes
their report.

    python tools/benchmark.py --arch s --out work_dirs/benchmark
"""
import argparse
import os
import os.path as osp
import time

import torch
from mmengine.logging import print_log

from fasternet_mm.benchmark import cpu_features, describe_cpu, dump_report
from fasternet_mm.benchmark.backbone import (backbone_section,
                                             plot_latency_vs_params,
                                             roofline_section, train_section)
from fasternet_mm.benchmark.detector import (amp_train_section,
                                             configs_section, detector_section)
from fasternet_mm.benchmark.gpu import (gpu_detector_section, gpu_section,
                                        gpu_train_section, plot_gpu_throughput)
from fasternet_mm.benchmark.onnx import onnx_section
from fasternet_mm.cli import add_deprecated_flag, exit_on_user_error
from fasternet_mm.errors import PreflightError
from fasternet_mm.export.evaluation import load_reader

# Why a CPU without native bf16 gets no bf16 timing.
BF16_SKIPPED = ('bf16 timing skipped: this CPU has no native bf16 '
                '(AVX512-BF16 or AMX), and emulated bf16 runs about 10x '
                'slower than fp32, so its figures would time the emulation')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The demo's Mask R-CNN, whose training step --amp speeds up.
DEMO_CONFIG = osp.join(REPO, 'configs/demo/mask_rcnn_fasternet_t0_shapes.py')
# --onnx: Mask R-CNN-S at 800x1216 and RTMDet-tiny-T0 at 640x640.
ONNX_CASES = (
    (osp.join(REPO, 'configs/mask_rcnn_fasternet_s.py'), (800, 1216)),
    (osp.join(REPO, 'configs/rtmdet_tiny_fasternet_t0_pafpn_coco.py'),
     (640, 640)),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', default='s', help='FasterNet arch')
    parser.add_argument(
        '--shape',
        nargs='+',
        default=['224x224', '800x1216'],
        help='input sizes of the backbone timing, HxW each')
    add_deprecated_flag(
        parser, '--shapes', '--shape', convert=lambda s: s.split(','))
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument(
        '--train-shape',
        default='512x768',
        help='input size of the CPU training step against timm, HxW')
    parser.add_argument(
        '--full',
        action='store_true',
        help='the full CPU run (about 4 minutes on 2 cores, against under '
        '3): the training step at the last --shape, and Mask R-CNN '
        'predict with FasterNet as built and ResNet-50 deployed too')
    parser.add_argument('--out', default='work_dirs/benchmark')
    parser.add_argument(
        '--skip-detector', action='store_true', help='no Mask R-CNN timing')
    parser.add_argument(
        '--skip-train', action='store_true', help='no training-step timing')
    parser.add_argument(
        '--gpu-batches',
        type=int,
        nargs='+',
        default=[32, 256],
        help='batches of the GPU throughput timing at 224x224, which runs '
        'when CUDA is available')
    parser.add_argument(
        '--gpu-compile',
        action='store_true',
        help='also time the compiled deploy form on the GPU (compiling '
        'takes about a minute per batch size)')
    parser.add_argument(
        '--gpu-only', action='store_true', help='only the GPU timing')
    parser.add_argument(
        '--configs',
        nargs='+',
        help='only time these detector configs against each other')
    parser.add_argument(
        '--config-shape',
        default='640x640',
        help='HxW of the --configs timing')
    parser.add_argument(
        '--onnx',
        action='store_true',
        help='only time end-to-end ONNX models (onnxruntime fp32 and int8, '
        'and OpenVINO fp32 and int8 where it is installed, CPU) against '
        'the deployed PyTorch predict: Mask R-CNN-S at 800x1216 and '
        'RTMDet-tiny-T0 at 640x640')
    parser.add_argument(
        '--onnx-models',
        nargs='+',
        choices=[osp.splitext(osp.basename(path))[0]
                 for path, _ in ONNX_CASES],
        help='with --onnx: only these of its models (default: all)')
    return parser.parse_args(argv)


def mask_rcnn_config(arch):
    """Our Mask R-CNN config with FasterNet-``arch``."""
    return osp.join(REPO, f'configs/mask_rcnn_fasternet_{arch}.py')


def sections(args, input_shapes, bf16=True):
    """The parts of a run in order, as ``(name, run(report))``: the GPU ones
    where CUDA is available, then (unless ``--gpu-only``) the CPU ones,
    their bf16 timing only with ``bf16``."""
    arch, repeats = args.arch, args.repeats
    parts = []
    if torch.cuda.is_available():
        parts.append(('gpu', lambda report: gpu_section(
            report, arch, repeats, args.gpu_batches, args.gpu_compile)))
        if not args.skip_train:
            parts.append(('gpu_train_step', lambda report: gpu_train_section(
                report, arch, repeats)))
        if not args.skip_detector:
            parts.append(('gpu_mask_rcnn', lambda report: gpu_detector_section(
                report, mask_rcnn_config(arch), repeats)))
    if args.gpu_only:
        return parts
    parts.append(('roofline', lambda report: roofline_section(
        report, arch, bf16)))
    for shape in input_shapes:
        parts.append((f'backbone {shape[0]}x{shape[1]}',
                      lambda report, shape=shape: backbone_section(
                          report, arch, shape,
                          report['roofline']['best_gflops_per_s'], repeats,
                          bf16)))
    train_shape = input_shapes[-1] if args.full else tuple(
        int(v) for v in args.train_shape.split('x'))
    if not args.skip_train:
        parts.append(('train_step', lambda report: train_section(
            report, arch, train_shape, repeats)))
        if bf16:
            parts.append(('amp_train_step', lambda report: amp_train_section(
                report, DEMO_CONFIG, repeats)))
    if not args.skip_detector:
        parts.append(('mask_rcnn_predict', lambda report: detector_section(
            report, mask_rcnn_config(arch), repeats, bf16,
            full=args.full)))
    return parts


@exit_on_user_error
def main(argv=None):
    started = time.perf_counter()
    args = parse_args(argv)
    input_shapes = [tuple(int(v) for v in s.split('x')) for s in args.shape]
    os.makedirs(args.out, exist_ok=True)
    cpu = cpu_features()
    print_log(describe_cpu(cpu))
    if args.onnx:
        report = dict(cpu=cpu)
        cases = [(path, shape) for path, shape in ONNX_CASES
                 if args.onnx_models is None or osp.splitext(
                     osp.basename(path))[0] in args.onnx_models]
        onnx_section(report, cases, load_reader().postprocess, args.repeats)
        dump_report(report, osp.join(args.out, 'benchmark_onnx.json'))
        print(f'\nwrote {args.out}/benchmark_onnx.json')
        return
    if args.configs:
        report = dict(cpu=cpu, threads=torch.get_num_threads())
        shape = tuple(int(v) for v in args.config_shape.split('x'))
        configs_section(report, args.configs, shape, args.repeats)
        dump_report(report, osp.join(args.out, 'benchmark_configs.json'))
        print(f'\nwrote {args.out}/benchmark_configs.json')
        return
    if args.gpu_only and not torch.cuda.is_available():
        raise PreflightError('--gpu-only: CUDA is not available here')
    name = 'benchmark_gpu' if args.gpu_only else 'benchmark'
    path = osp.join(args.out, f'{name}.json')
    # Written after each section, so that a run cut by a time limit still
    # leaves the figures of the sections it finished.
    report = dict(
        arch=args.arch, cpu=cpu, backbone={}, train_step={}, finished=[],
        complete=False)
    if not (args.gpu_only or cpu['native_bf16']):
        print_log(BF16_SKIPPED)
    report['wall_s'] = {}
    for section, run in sections(args, input_shapes, cpu['native_bf16']):
        start = time.perf_counter()
        run(report)
        report['wall_s'][section] = time.perf_counter() - start
        report['finished'].append(section)
        dump_report(report, path)
    report['complete'] = True
    report['wall_s']['total'] = time.perf_counter() - started
    dump_report(report, path)
    print_log('\nwall time: ' + ', '.join(
        f'{name} {seconds:.0f} s'
        for name, seconds in report['wall_s'].items()))
    if args.gpu_only:
        plot_gpu_throughput(report,
                            osp.join(args.out, 'gpu_throughput.png'))
        print(f'\nwrote {path} and gpu_throughput.png')
        return
    plot_latency_vs_params(report,
                           osp.join(args.out, 'latency_vs_params.png'))
    print(f'\nwrote {path} and latency_vs_params.png')


if __name__ == '__main__':
    main()
