"""Whole detectors on the CPU with random weights: Mask R-CNN predict with
FasterNet against ResNet-50, as built and deployed, in fp32 and under amp
(bf16 autocast by parts); the ``tools/train.py --amp`` training step; and the
detectors of several configs against each other."""
import copy
import os.path as osp
from typing import Sequence

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..complexity import count_parameters
from ..deploy import switch_to_deploy
from ..model_utils import build_model, dummy_sample
from ..precision import use_amp, use_fp32
from .timing import interleaved_medians

# mmdet's own Mask R-CNN with ResNet-50, the baseline of the sections.
RESNET50_MASK_RCNN = \
    "_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n"


def load_detector_config(source: str) -> Config:
    """A config from a file path, or from the text of one."""
    if source.endswith('.py'):
        return Config.fromfile(source)
    return Config.fromstring(source, file_format='.py')


def keep_all_boxes(cfg: Config) -> Config:
    """Set every ``score_thr`` of ``cfg.model.test_cfg`` (and of its
    ``rcnn`` part) to 0, in place. Random weights score boxes anywhere
    around the usual thresholds (below 0.05 for Mask R-CNN), so
    post-processing would depend on chance: with 0 every model keeps its
    ``max_per_img`` boxes, as a trained one does, and the mask head
    runs."""
    test_cfg = cfg.model.get('test_cfg') or {}
    for part in (test_cfg, test_cfg.get('rcnn')):
        if part is not None and 'score_thr' in part:
            part.score_thr = 0.0
    return cfg


def training_batch(batch, shape, boxes, device, seed=0):
    """Images and DetDataSamples with ``boxes`` random boxes, labels and box
    masks each: enough for a detector's ``mode='loss'``."""
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):
        sample = dummy_sample('mmdet', *shape)
        corner = torch.rand(boxes, 2, generator=generator) * torch.tensor(
            shape[::-1]) * 0.6
        size = torch.rand(boxes, 2, generator=generator) * torch.tensor(
            shape[::-1]) * 0.3 + 8
        bboxes = torch.cat([corner, corner + size], 1)
        masks = torch.zeros(boxes, *shape, dtype=torch.uint8)
        for mask, (x0, y0, x1, y1) in zip(masks, bboxes.int().tolist()):
            mask[y0:y1, x0:x1] = 1
        sample.gt_instances = InstanceData(
            bboxes=bboxes.to(device),
            labels=torch.randint(0, 3, (boxes, ),
                                 generator=generator).to(device),
            masks=BitmapMasks(masks.numpy(), *shape))
        samples.append(sample)
    return torch.rand(batch, 3, *shape, device=device), samples


def detector_section(report: dict,
                     config: str,
                     repeats: int = 5,
                     amp: bool = True,
                     full: bool = True) -> None:
    """Mask R-CNN predict at 800x1216, batch 1: the deployed FasterNet
    detector of ``config`` against ResNet-50's as built, with ``full`` also
    FasterNet's as built and ResNet-50's deployed, the deployed ones also
    (with ``amp``) with their backbone, neck and heads under bf16 autocast
    (:func:`use_amp`); under ``report['mask_rcnn_predict']``."""
    shape = (800, 1216)
    sources = dict(fasternet_deploy=config, resnet50=RESNET50_MASK_RCNN)
    if full:
        sources.update(fasternet=config, resnet50_deploy=RESNET50_MASK_RCNN)
    models = {
        name: build_model(keep_all_boxes(load_detector_config(source))).eval()
        for name, source in sources.items()
    }
    for name in ('fasternet_deploy', 'resnet50_deploy'):
        if name in models:
            switch_to_deploy(models[name])  # ResNet-50: its RoIAlign only
    image = torch.rand(1, 3, *shape)

    def predict(model, amp=False):

        def run():
            if amp:
                use_amp(model)
            try:
                return model(
                    image, [dummy_sample('mmdet', *shape)], mode='predict')
            finally:
                use_fp32(model)

        return run

    cases = {name: predict(model) for name, model in models.items()}
    for name in ('fasternet_deploy', 'resnet50_deploy') if amp else ():
        if name in models:
            cases[f'{name}_amp'] = predict(models[name], amp=True)
    with torch.no_grad():
        seconds = interleaved_medians(cases, max(repeats // 2, 2))
    base = seconds['resnet50']
    report['mask_rcnn_predict'] = dict(
        ms={
            k: v * 1e3
            for k, v in seconds.items()
        },
        over_resnet50_fp32={
            k: v / base
            for k, v in seconds.items()
        })
    print_log('\n== Mask R-CNN predict, 800x1216, random weights, top 100 '
              'boxes to the mask head ==\n_deploy: switch_to_deploy (BN '
              'folded, GatherRoIAlign)' +
              ('; _amp: backbone, neck and heads under bf16 autocast'
               if amp else ''))
    for name, value in seconds.items():
        print_log(f'{name:22s} {value * 1e3:9.1f} ms   / resnet50 fp32 = '
                  f'{value / base:.2f}')


def amp_train_section(report: dict,
                      config: str,
                      repeats: int = 5,
                      shape=(256, 256),
                      batch=4,
                      boxes=4) -> None:
    """``tools/train.py --amp`` on a CPU: one training step of the
    detector of ``config`` (the demo's Mask R-CNN: T0, 64-channel heads) in
    fp32 against bf16 by parts (AmpTrainingHook's use_amp),
    interleaved; under ``report['amp_train_step']``."""
    model = build_model(Config.fromfile(config)).train()
    images, samples = training_batch(batch, shape, boxes, 'cpu')

    def step(amp):

        def run():
            if amp:
                use_amp(model)
            try:
                losses = model(images, samples, mode='loss')
                sum(v.sum() if torch.is_tensor(v) else sum(v)
                    for k, v in losses.items() if 'loss' in k).backward()
            finally:
                use_fp32(model)

        return run

    seconds = interleaved_medians(
        dict(fp32=step(False), amp=step(True)), max(repeats, 4))
    report['amp_train_step'] = dict(
        shape=list(shape),
        batch=batch,
        ms={k: v * 1e3
            for k, v in seconds.items()},
        speedup=seconds['fp32'] / seconds['amp'])
    print_log(f"\n== demo Mask R-CNN training step, batch {batch}, "
              f"{shape[0]}x{shape[1]}: fp32 {seconds['fp32'] * 1e3:.0f} ms, "
              f"--amp (bf16 by parts) {seconds['amp'] * 1e3:.0f} ms: "
              f"{seconds['fp32'] / seconds['amp']:.2f}x")


def configs_section(report: dict,
                    configs: Sequence[str],
                    shape: Sequence[int],
                    repeats: int = 5) -> None:
    """Neck, network (tensor mode) and predict latency of whole detectors,
    as built (eval mode) and after ``switch_to_deploy``, with random
    weights at batch 1; ratios against the first of ``configs``. Under
    ``report['configs']``."""
    shape = tuple(shape)
    image = torch.rand(1, 3, *shape)
    cases, models = {}, {}
    for path in configs:
        name = osp.splitext(osp.basename(path))[0]
        built = build_model(keep_all_boxes(Config.fromfile(path))).eval()
        deployed = switch_to_deploy(copy.deepcopy(built))
        for form, model in (('', built), ('_deploy', deployed)):
            with torch.no_grad():
                feats = model.backbone(image)

            def neck(model=model, feats=feats):
                return model.neck(feats)

            def network(model=model):
                return model._forward(image, [dummy_sample('mmdet', *shape)])

            def predict(model=model):
                return model(
                    image, [dummy_sample('mmdet', *shape)], mode='predict')

            cases[f'{name}{form}/neck'] = neck
            cases[f'{name}{form}/network'] = network
            cases[f'{name}{form}/predict'] = predict
        models[name] = built
    with torch.no_grad():
        seconds = interleaved_medians(cases, repeats)
    first = osp.splitext(osp.basename(configs[0]))[0]
    report['configs'] = dict(
        shape=list(shape),
        params_m={k: count_parameters(m) / 1e6
                  for k, m in models.items()},
        neck_params_m={k: count_parameters(m.neck) / 1e6
                       for k, m in models.items()},
        ms={k: v * 1e3
            for k, v in seconds.items()})
    print_log(f'\n== detectors, batch 1, {shape[0]}x{shape[1]}, random '
              f'weights; ratios against {first} ==')
    for name, model in models.items():
        print_log(f'{name}: params {count_parameters(model) / 1e6:.2f}M, '
                  f'neck {count_parameters(model.neck) / 1e6:.2f}M')
    for key, value in seconds.items():
        name, part = key.split('/')
        base = f"{first}{'_deploy' if name.endswith('_deploy') else ''}"
        print_log(f'{key:60s} {value * 1e3:9.1f} ms   / {base} = '
                  f"{value / seconds[f'{base}/{part}']:.2f}")
