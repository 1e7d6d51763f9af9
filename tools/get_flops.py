"""Count the parameters and FLOPs of a detection or segmentation config.

FLOPs are multiply-adds, as in the FasterNet paper and fvcore, counted by
``mmengine.analysis`` on one forward pass of the model's tensor mode (for
two-stage detectors: backbone, neck, RPN, and the RoI heads on the test-time
proposals). Operators without a counting rule (RoIAlign, NMS) add nothing;
docs/benchmarks.md#flops compares the counts with the paper's.

    python tools/get_flops.py configs/mask_rcnn_fasternet_s.py --shape 1280 800
"""
import argparse

from mmengine.config import DictAction

from fasternet_mm.cli import exit_on_user_error, load_config
from fasternet_mm.complexity import count_complexity
from fasternet_mm.errors import PreflightError
from fasternet_mm.model_utils import build_model


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Count a model's FLOPs")
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[1280, 800],
        help='input size: H W, or one number for a square')
    parser.add_argument(
        '--size-divisor',
        type=int,
        default=32,
        help='pad the input to a multiple of this, as the data '
        'preprocessor does; 0 for none')
    parser.add_argument(
        '--backbone-only', action='store_true', help='count the backbone')
    parser.add_argument(
        '--by-part',
        action='store_true',
        help='also split the FLOPs into backbone, neck and heads')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    if len(args.shape) not in (1, 2) or min(args.shape) < 32:
        raise PreflightError(f'--shape takes H W or one size, each at '
                             f'least 32; got {args.shape}')
    height, width = (args.shape * 2)[:2]
    if args.size_divisor > 0:
        height = -(-height // args.size_divisor) * args.size_divisor
        width = -(-width // args.size_divisor) * args.size_divisor
    cfg = load_config(args.config, args.cfg_options, 'none', None)
    model = build_model(cfg)
    result = count_complexity(model, cfg.default_scope, height, width,
                              args.backbone_only, args.by_part)
    print(f'Config: {args.config}')
    print(f'Input shape: (3, {height}, {width})')
    print(f"Params: {result['params'] / 1e6:.1f}M ({result['params']:,})")
    print(f"FLOPs (multiply-adds): {result['flops'] / 1e9:.1f}G "
          f"({result['flops']:,})")
    for name, flops in result.get('flops_by_part', {}).items():
        part = sum(p.numel() for p in getattr(model, name).parameters())
        print(f'  {name}: {flops / 1e9:.2f}G FLOPs, {part / 1e6:.2f}M '
              f'params')


if __name__ == '__main__':
    main()
