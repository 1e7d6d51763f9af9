"""Draw a detector's predictions on images and save them as PNG.

    python tools/image_demo.py demo.jpg configs/mask_rcnn_fasternet_s.py \
        model.pth --out-dir outputs/
"""
import argparse
import os
import os.path as osp

import mmcv
from mmengine.registry import init_default_scope

from fasternet_mm.checkpoint import mmengine_checkpoints
from fasternet_mm.cli import exit_on_user_error, load_config
from fasternet_mm.errors import MissingFileError, PreflightError
from fasternet_mm.preflight import check_checkpoint_path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out-dir', default='outputs', help='where the PNGs go')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--score-thr', type=float, default=0.3, help='bbox score threshold')
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    for image in args.images:
        if not osp.isfile(image):
            raise MissingFileError(f'Image not found: {image!r}')
    check_checkpoint_path(args.checkpoint, 'checkpoint')
    cfg = load_config(args.config, None, 'none', None)
    if cfg.default_scope != 'mmdet':
        raise PreflightError(f'image_demo draws detections; {args.config} '
                             f'is an {cfg.default_scope} config')
    init_default_scope('mmdet')
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS

    cfg.model.backbone.init_cfg = None
    with mmengine_checkpoints():  # MMEngine's checkpoints, weights-only
        model = init_detector(cfg, args.checkpoint, device=args.device)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    os.makedirs(args.out_dir, exist_ok=True)
    for image_path in args.images:
        image = mmcv.imread(image_path, channel_order='rgb')
        result = inference_detector(model, image)
        out_file = osp.join(args.out_dir,
                            osp.splitext(osp.basename(image_path))[0] + '.png')
        visualizer.add_datasample(
            'result',
            image,
            data_sample=result,
            draw_gt=False,
            show=False,
            pred_score_thr=args.score_thr,
            out_file=out_file)
        shown = int((result.pred_instances.scores >= args.score_thr).sum())
        print(f'{image_path}: {shown} instances with score >= '
              f'{args.score_thr}, drawn to {out_file}')


if __name__ == '__main__':
    main()
