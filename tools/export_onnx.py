"""Export a deployed FasterNet, or a whole model, to ONNX and check it.

The backbone:

    python tools/export_onnx.py --arch s --shape 800 1216 fasternet_s.onnx
    python tools/export_onnx.py --arch s --checkpoint ours.pth out.onnx

A whole detector or segmentor, as its raw outputs (mmdet's and mmseg's
``mode='tensor'``) for a normalised, padded image (see fasternet_mm.export);
for a two-stage detector, only the features and RPN outputs (``--part rpn``):

    python tools/export_onnx.py --shape 800 1216 retinanet.onnx \
        --config configs/retinanet_fasternet_s_fpn_1x_coco.py \
        --checkpoint retinanet.pth
    python tools/export_onnx.py --part rpn mask_rcnn_rpn.onnx \
        --config configs/mask_rcnn_fasternet_s.py

onnxruntime must agree with PyTorch to a relative error of 1e-4.
"""
import argparse
import os

from mmengine.config import DictAction

from fasternet_mm import FasterNet
from fasternet_mm.cli import (exit_on_user_error, load_config,
                              missing_files_are_user_errors)
from fasternet_mm.complexity import weight_bytes
from fasternet_mm.export import (PARTS, ExportError, TensorOutputs,
                                 build_deploy_model, check_with_onnxruntime,
                                 export_model_onnx, export_onnx)

# The largest error of onnxruntime against PyTorch that the check accepts.
TOLERANCE = 1e-4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out', help='the .onnx file to write')
    what = parser.add_mutually_exclusive_group()
    what.add_argument('--arch', default='s', help='FasterNet arch')
    what.add_argument(
        '--config', help='an mmdet or mmseg config: export its whole model')
    parser.add_argument(
        '--part',
        choices=PARTS,
        help="with --config: 'model' (the default) for the raw outputs, "
        "'rpn' for a two-stage detector's features and RPN head outputs")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='with --config: override settings in the config, key=value')
    parser.add_argument(
        '--checkpoint',
        help='backbone weights in any supported layout, or with --config '
        'the whole model\'s (default: random weights)')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'))
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument(
        '--dynamic', action='store_true', help='dynamic batch, H and W')
    args = parser.parse_args(argv)
    if args.config is None and (args.part or args.cfg_options):
        parser.error('--part and --cfg-options need --config')
    return args


def export_backbone(args):
    init_cfg = dict(type='Pretrained', checkpoint=args.checkpoint) \
        if args.checkpoint else None
    model = FasterNet(arch=args.arch, init_cfg=init_cfg)
    model.init_weights()
    model.switch_to_deploy()
    image, outputs = export_onnx(model, args.out, args.shape, args.opset,
                                 args.dynamic)
    return model, image, outputs


def export_model(args):
    cfg = load_config(args.config, args.cfg_options, 'none', None)
    model = TensorOutputs(
        build_deploy_model(cfg, args.checkpoint), args.part or 'model')
    image, outputs = export_model_onnx(model, args.out, args.shape, args.opset,
                                       args.dynamic)
    return model, image, outputs


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    export = export_model if args.config else export_backbone
    with missing_files_are_user_errors():  # --checkpoint
        model, image, outputs = export(args)
    weights = weight_bytes(model)
    size = os.path.getsize(args.out)
    error = check_with_onnxruntime(args.out, image, outputs)
    print(f'{args.out}: {size / 2**20:.1f} MiB for {weights / 2**20:.1f} '
          f'MiB of fp32 weights ({size / weights:.3f}x); onnxruntime vs '
          f'PyTorch: max relative error {error:.2e}')
    if error > TOLERANCE:
        raise ExportError(
            f'{args.out} disagrees with PyTorch: max relative error '
            f'{error:.2e} > {TOLERANCE:.0e}' +
            (' at another input size; export without --dynamic'
             if args.dynamic and args.config else ''))


if __name__ == '__main__':
    main()
