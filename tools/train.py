"""Train a detector (mmdet) or segmentor (mmseg) from a config.

The flags follow mmdet's and mmseg's tools/train.py; the library is chosen
by the config's ``default_scope``. Missing data, checkpoints or mismatched
widths are reported before the Runner is built.
"""
import argparse

from fasternet_mm.checkpoint import mmengine_checkpoints
from fasternet_mm.cli import (add_common_args, build_runner,
                              exit_on_user_error, load_config)
from fasternet_mm.errors import PreflightError
from fasternet_mm.precision import configure_amp
from fasternet_mm.preflight import check_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: fp16 with a loss scaler on CUDA (also NPU, '
        'MLU, MUSA), bf16 autocast by parts on a CPU with native bf16')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual total batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or without a value from the '
        'latest one in the work dir')
    add_common_args(parser)
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.launcher,
                      args.work_dir)
    if args.amp:
        configure_amp(cfg)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise PreflightError(
                '--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
                'config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    check_config(cfg, 'train')
    runner = build_runner(cfg)
    with mmengine_checkpoints():  # MMEngine's checkpoints, weights-only
        runner.train()


if __name__ == '__main__':
    main()
