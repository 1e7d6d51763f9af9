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

End to end (``--end-to-end``): a detector or segmentor from a preprocessed
image to its final predictions, post-processing included, in standard ONNX
operators (NonMaxSuppression, RoiAlign; no custom or mmcv ops), opset 17:

    python tools/export_onnx.py --end-to-end mask_rcnn.onnx \
        --config configs/demo/mask_rcnn_fasternet_t0_shapes.py \
        --checkpoint work_dirs/demo/epoch_12.pth

- input ``image``: float32 [1, 3, H, W], H and W dynamic, preprocessed as
  the model's data preprocessor does (test pipeline resize, channel order,
  mean/std, padding to the size divisor);
- detectors: ``boxes`` [N, 4] (x1, y1, x2, y2 in the input's pixels),
  ``scores`` [N], ``labels`` [N] (int64), best first; Mask R-CNN also
  ``masks`` [N, 28, 28], each box's class probabilities at RoI resolution
  (the reader pastes them); segmentors: ``label_map`` [H, W] (int64);
- the test config's score_thr, NMS IoU threshold, max_per_img, and the
  RPN's nms_pre, max_per_img and min_bbox_size are in the graph;
- the file's metadata_props hold what tools/onnx_demo.py (onnxruntime, numpy
  and OpenCV only) needs to preprocess an image and read the outputs.

Supported: RetinaNet, RTMDet and other BaseDenseHead detectors; Faster and
Mask R-CNN (RPNHead + StandardRoIHead); mmseg EncoderDecoder (Semantic FPN,
UperNet) with whole-image inference. The file is checked at another size
than the traced one: onnxruntime against the same module in PyTorch (with
random weights, i.e. without --checkpoint, only reported: their saturated
scores tie, and NMS may break ties either way). See docs/onnx.md.
"""
import argparse
import os

from mmengine.config import DictAction

from fasternet_mm import FasterNet
from fasternet_mm.cli import (exit_on_user_error, load_config,
                              missing_files_are_user_errors)
from fasternet_mm.complexity import weight_bytes
from fasternet_mm.errors import ExportError
from fasternet_mm.export import (PARTS, TensorOutputs, build_deploy_model,
                                 check_with_onnxruntime,
                                 compare_with_onnxruntime, end_to_end_graph,
                                 example_inputs, export_end_to_end,
                                 export_model_onnx, export_onnx, other_size,
                                 reader_metadata)

# The bar for onnxruntime against PyTorch: raw outputs (relative error),
# end-to-end detection scores (absolute).
TOLERANCE = 1e-4
SCORE_TOLERANCE = 1e-3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'out', nargs='?', help='the .onnx file to write (not with '
        '--end-to-end)')
    parser.add_argument(
        '--end-to-end',
        metavar='OUT',
        help='with --config: write the whole model, post-processing '
        'included, to this .onnx file (see above)')
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
    if args.config is None and (args.part or args.cfg_options
                                or args.end_to_end):
        parser.error('--part, --cfg-options and --end-to-end need --config')
    if (args.out is None) == (args.end_to_end is None):
        parser.error('give either the output file or --end-to-end OUT, '
                     'not both')
    if args.end_to_end and (args.part or args.dynamic):
        parser.error('--end-to-end exports the whole model with dynamic '
                     'sizes: no --part and no --dynamic')
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


def export_whole_model(args):
    """The end-to-end export, checked at another size than the traced
    one."""
    cfg = load_config(args.config, args.cfg_options, 'none', None)
    with missing_files_are_user_errors():  # --checkpoint
        graph = end_to_end_graph(build_deploy_model(cfg, args.checkpoint))
    metadata = reader_metadata(cfg, graph)
    export_end_to_end(graph, args.end_to_end, args.shape, metadata,
                      args.opset)
    shape = other_size(args.shape)
    check = compare_with_onnxruntime(args.end_to_end, graph,
                                     example_inputs(graph, shape, seed=1))
    weights = weight_bytes(graph)
    size = os.path.getsize(args.end_to_end)
    if 'agreement' in check:
        agreement = f'same label for {check["agreement"]:.4%} of the pixels'
        failed = check['agreement'] < 0.999
    else:
        agreement = (f'{check["onnx"]} and {check["pytorch"]} detections, '
                     f'sorted scores differ by at most {check["score"]:.1e}')
        failed = check['score'] > SCORE_TOLERANCE
    print(f'{args.end_to_end}: {size / 2**20:.1f} MiB for '
          f'{weights / 2**20:.1f} MiB of fp32 weights '
          f'({size / weights:.3f}x); onnxruntime vs '
          f'PyTorch at {shape[0]}x{shape[1]}: {agreement}')
    if failed and args.checkpoint is None:
        print('(random weights: not an error, ties among equal scores can '
              'be broken either way)')
    elif failed:
        raise ExportError(f'{args.end_to_end} disagrees with PyTorch at '
                          f'{shape[0]}x{shape[1]}: {agreement}')


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    if args.end_to_end:
        export_whole_model(args)
        return
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
