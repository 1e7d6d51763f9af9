"""Export a deployed FasterNet backbone to ONNX and check it against
PyTorch with onnxruntime.

    python tools/export_onnx.py --arch s --shape 800 1216 fasternet_s.onnx
    python tools/export_onnx.py --arch s --checkpoint ours.pth out.onnx
"""
import argparse
import os

from fasternet_mm import FasterNet
from fasternet_mm.cli import exit_on_user_error
from fasternet_mm.export import check_with_onnxruntime, export_onnx


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--arch', default='s', help='FasterNet arch')
    parser.add_argument(
        '--checkpoint',
        help='weights in any supported layout (default: '
        'random weights)')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'))
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument(
        '--dynamic', action='store_true', help='dynamic batch, H and W')
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    init_cfg = dict(type='Pretrained', checkpoint=args.checkpoint) \
        if args.checkpoint else None
    model = FasterNet(arch=args.arch, init_cfg=init_cfg)
    model.init_weights()
    model.switch_to_deploy()
    image, outputs = export_onnx(model, args.out, args.shape, args.opset,
                                 args.dynamic)
    weights = sum(t.numel() * t.element_size()
                  for t in model.state_dict().values())
    size = os.path.getsize(args.out)
    error = check_with_onnxruntime(args.out, image, outputs)
    print(f'{args.out}: {size / 2**20:.1f} MiB for {weights / 2**20:.1f} '
          f'MiB of fp32 weights ({size / weights:.3f}x); onnxruntime vs '
          f'PyTorch: max relative error {error:.2e}')


if __name__ == '__main__':
    main()
