"""Compare a detector's end-to-end ONNX export with mmdet on image files.

    python tools/compare_onnx.py configs/mask_rcnn_fasternet_t0.py \
        photo1.jpg photo2.jpg --checkpoint epoch_12.pth

Exports the config's detector end to end (as ``tools/export_onnx.py
--end-to-end``), then runs each image through ``tools/onnx_demo.py``'s
reader and through mmdet's own ``inference_detector`` (the config's test
pipeline, data preprocessor and ``predict(rescale=True)``), and matches the
detections one to one within each class. Prints per image the counts, the
unmatched detections, the smallest box and mask IoU and the largest score
difference; exits with 1 when a detection is unmatched, a score differs by
more than 1e-3, or fewer than 99% of the matched boxes reach IoU 0.99 (and
masks 0.9).
"""
import argparse
import os.path as osp
import sys
import tempfile

import cv2
import numpy as np
import torch
from mmengine.config import DictAction

from fasternet_mm.cli import (exit_on_user_error, load_config,
                              missing_files_are_user_errors)
from fasternet_mm.errors import MissingFileError
from fasternet_mm.export import (build_deploy_model, end_to_end_graph,
                                 export_end_to_end, reader_metadata)
from fasternet_mm.export.evaluation import load_reader
from fasternet_mm.testing import (match_detections, mmdet_detections,
                                  randomize_norms)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='a detector config')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument(
        '--checkpoint', help='its weights (default: random, seed 0)')
    parser.add_argument(
        '--random-norms',
        action='store_true',
        help='give the BatchNorms random statistics, so that random '
        'weights score boxes anywhere and many pass the thresholds')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    return parser.parse_args(argv)


def summary(stats):
    """The worst figures of one image's :func:`match_detections`."""
    return dict(
        ours=stats['ours'],
        mmdet=stats['reference'],
        unmatched=stats['unmatched'],
        box_iou=min(stats['box_ious'], default=1.),
        mask_iou=min(stats['mask_ious'], default=1.),
        score=max(stats['score_diffs'], default=0.))


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    for path in args.images:
        if not osp.isfile(path):
            raise MissingFileError(f'Image not found: {path!r}')
    cfg = load_config(args.config, args.cfg_options, 'none', None)
    torch.manual_seed(0)
    with missing_files_are_user_errors():  # --checkpoint
        model = build_deploy_model(cfg, args.checkpoint)
    if args.random_norms:
        randomize_norms(model)
    model.cfg = cfg
    graph = end_to_end_graph(model)
    reader = load_reader()
    box_ious, mask_ious, worst = [], [], dict(unmatched=0, score=0.)
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'model.onnx')
        export_end_to_end(graph, path, (320, 320),
                          reader_metadata(cfg, graph))
        runtime, metadata = reader.load_model(path)
        print(f'{"image":24s} {"HxW":>9s} {"ours":>5s} {"mmdet":>5s} '
              f'{"unmatched":>9s} {"box IoU":>8s} {"mask IoU":>8s} '
              f'{"score":>8s}')
        for image_path in args.images:
            image = cv2.imread(image_path, cv2.IMREAD_COLOR)
            ours = reader.predict(runtime, metadata, image)
            stats = match_detections(ours, mmdet_detections(model, image_path))
            box_ious += stats['box_ious']
            mask_ious += stats['mask_ious']
            row = summary(stats)
            worst['unmatched'] += row['unmatched']
            worst['score'] = max(worst['score'], row['score'])
            size = 'x'.join(str(v) for v in image.shape[:2])
            print(f'{osp.basename(image_path)[:24]:24s} {size:>9s} '
                  f'{row["ours"]:5d} {row["mmdet"]:5d} '
                  f'{row["unmatched"]:9d} {row["box_iou"]:8.4f} '
                  f'{row["mask_iou"]:8.4f} {row["score"]:8.1e}')
    box_share = float(np.mean(np.array(box_ious) >= 0.99)) \
        if box_ious else 1.
    mask_share = float(np.mean(np.array(mask_ious) >= 0.9)) \
        if mask_ious else 1.
    print(f'{len(box_ious)} matched detections, {worst["unmatched"]} '
          f'unmatched; box IoU >= 0.99: {box_share:.2%}; mask IoU >= 0.9: '
          f'{mask_share:.2%}; largest score difference '
          f'{worst["score"]:.1e}')
    failed = worst['unmatched'] or worst['score'] > 1e-3 or \
        box_share < 0.99 or mask_share < 0.99
    if failed:
        sys.exit(1)


if __name__ == '__main__':
    main()
