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

onnxruntime must agree with PyTorch to a relative error of 1e-4
(fasternet_mm.export.check decides).

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

int8 (``--int8``, with ``--end-to-end``): the float32 file is checked as
above, then statically quantized by onnxruntime (QDQ, uint8 activations,
int8 weights per output channel, 7-bit weights on CPUs without VNNI) in
the backbone and the neck (``--int8-parts``), calibrated on
``--calib-images`` images of the config's training set, preprocessed by
tools/onnx_demo.py as it prepares any image. Box decoding, NMS, RoiAlign
and the mask sigmoid stay float32. The reader and tools/test_onnx.py run
the file as they run a float32 one; its metadata says what is int8.
``--quantizer nncf`` quantizes with NNCF for OpenVINO instead (the
``openvino`` extra), run by ``--backend openvino``:

    python tools/export_onnx.py --end-to-end mask_rcnn_int8.onnx --int8 \
        --config configs/demo/mask_rcnn_fasternet_t0_shapes.py \
        --checkpoint work_dirs/demo/epoch_12.pth

Supported: RetinaNet, RTMDet and other BaseDenseHead detectors; Faster and
Mask R-CNN (RPNHead + StandardRoIHead); mmseg EncoderDecoder (Semantic FPN,
UperNet) with whole-image inference. The file is checked at another size
than the traced one: onnxruntime against the same module in PyTorch (with
random weights, i.e. without --checkpoint, only reported: their saturated
scores tie, and NMS may break ties either way). See docs/onnx.md.
"""
import argparse

from mmengine.config import DictAction

from fasternet_mm.cli import (exit_on_user_error, load_config,
                              missing_files_are_user_errors)
from fasternet_mm.export import (DEFAULT_CALIBRATION_IMAGES, DEFAULT_PARTS,
                                 PARTS, QUANTIZABLE_PARTS, QUANTIZERS,
                                 Quantization, calibration_image_paths,
                                 export_and_check_backbone,
                                 export_and_check_end_to_end,
                                 export_and_check_model, load_reader)


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
        '--int8',
        action='store_true',
        help='with --end-to-end: quantize the file statically (see above)')
    parser.add_argument(
        '--calib-images',
        type=int,
        metavar='N',
        help=f'with --int8: calibrate on N images of the training set '
        f'(default {DEFAULT_CALIBRATION_IMAGES})')
    parser.add_argument(
        '--int8-parts',
        nargs='+',
        choices=list(QUANTIZABLE_PARTS),
        metavar='PART',
        help=f'with --int8: the parts quantized, of '
        f'{list(QUANTIZABLE_PARTS)} (default {" ".join(DEFAULT_PARTS)})')
    parser.add_argument(
        '--quantizer',
        choices=list(QUANTIZERS),
        help="with --int8: 'onnxruntime' (the default) for onnxruntime, "
        "'nncf' for OpenVINO (needs pip install -e .[openvino])")
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
    if args.int8 and not args.end_to_end:
        parser.error('--int8 quantizes end-to-end files: give --end-to-end '
                     'OUT')
    if not args.int8 and (args.calib_images is not None or args.int8_parts
                          or args.quantizer):
        parser.error('--calib-images, --int8-parts and --quantizer need '
                     '--int8')
    if args.calib_images is not None and args.calib_images < 1:
        parser.error(f'--calib-images {args.calib_images}: give at least 1')
    return args


def quantization(cfg, args) -> Quantization:
    """What --int8 asks for: the calibration images, prepared by the
    reader."""
    reader = load_reader()

    def prepare(path, spec):
        tensor, info = reader.preprocess(reader.read_image(path), spec)
        return reader.graph_inputs(tensor, info)

    count = args.calib_images or DEFAULT_CALIBRATION_IMAGES
    return Quantization(
        paths=calibration_image_paths(cfg, count),
        prepare=prepare,
        parts=args.int8_parts or DEFAULT_PARTS,
        quantizer=args.quantizer or 'onnxruntime')


def export_and_check(args):
    """Export what the flags ask for; the package checks the file."""
    if args.end_to_end:
        cfg = load_config(args.config, args.cfg_options, 'none', None)
        int8 = quantization(cfg, args) if args.int8 else None
        return export_and_check_end_to_end(cfg, args.end_to_end, args.shape,
                                           args.checkpoint, args.opset, int8)
    if args.config:
        cfg = load_config(args.config, args.cfg_options, 'none', None)
        return export_and_check_model(cfg, args.out, args.shape,
                                      args.checkpoint, args.part or 'model',
                                      args.opset, args.dynamic)
    return export_and_check_backbone(args.arch, args.out, args.shape,
                                     args.checkpoint, args.opset,
                                     args.dynamic)


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    with missing_files_are_user_errors():  # --checkpoint
        check = export_and_check(args)
    for line in check.lines():
        print(line)
    check.raise_if_failed()


if __name__ == '__main__':
    main()
