"""Evaluate a checkpoint with a detection (mmdet) or segmentation (mmseg)
config; the flags follow mmdet's and mmseg's tools/test.py."""
import argparse
import os.path as osp

from mmengine.device import get_device

from fasternet_mm.checkpoint import mmengine_checkpoints
from fasternet_mm.cli import (add_common_args, add_deprecated_flag,
                              build_runner, exit_on_user_error, load_config)
from fasternet_mm.errors import PreflightError
from fasternet_mm.precision import check_native_bf16
from fasternet_mm.preflight import check_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='mmdet: dump predictions to this pickle file; mmseg: save the '
        'predicted masks in this directory')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='save images with predictions drawn into this directory '
        '(under the work dir for a relative path)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--deploy',
        action='store_true',
        help='test the deploy form (BN folded into convs, mmcv RoIAlign '
        'swapped for the equal GatherRoIAlign)')
    parser.add_argument(
        '--amp',
        nargs='?',
        const='all',
        choices=['all', 'backbone'],
        help='mixed precision: run the backbone, neck and heads (or, with '
        '"backbone", the backbone only) under bf16 autocast; the predictor '
        'layers, RoIAlign, NMS and the other post-processing stay fp32; '
        'refused on a CPU without native bf16 (AVX512-BF16 or AMX), where '
        'it is about 10x slower than fp32, unless '
        'FASTERNET_MM_ALLOW_EMULATED_BF16=1')
    add_deprecated_flag(
        parser, '--bf16', '--amp', nargs='?', const='all',
        choices=['all', 'backbone'])
    add_common_args(parser)
    return parser.parse_args(argv)


def enable_visualization(cfg, args):
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        return
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        if cfg.default_scope == 'mmdet':
            hook['test_out_dir'] = args.show_dir
        else:
            cfg.visualizer['save_dir'] = args.show_dir
            hook['interval'] = 1


def add_output(cfg, out):
    if cfg.default_scope == 'mmseg':
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
        return
    if not out.endswith(('.pkl', '.pickle')):
        raise PreflightError(
            f'--out must be a .pkl or .pickle file, got {out!r}')
    evaluators = cfg.test_evaluator if isinstance(
        cfg.test_evaluator, list) else [cfg.test_evaluator]
    cfg.test_evaluator = evaluators + [
        dict(type='DumpDetResults', out_file_path=out)
    ]


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    if args.amp:  # before the config and checkpoint are read
        check_native_bf16(get_device())
    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir)
    if args.out:  # a bad --out fails before the checkpoint is read
        add_output(
            cfg,
            osp.abspath(args.out)
            if cfg.default_scope == 'mmseg' else args.out)
    cfg.load_from = args.checkpoint
    check_config(cfg, 'test')
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.deploy or args.amp:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(
                type='fasternet_mm.InferenceFormHook',
                deploy=args.deploy,
                amp=args.amp)
        ]
    runner = build_runner(cfg)
    with mmengine_checkpoints():  # MMEngine's checkpoints, weights-only
        runner.test()


if __name__ == '__main__':
    main()
