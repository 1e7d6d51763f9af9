"""The benchmark on a CUDA device (any device in the tests): deployed
backbone throughput against timm in NCHW and channels-last, a backbone
training step against timm, and Mask R-CNN predict and training step
with FasterNet against ResNet-50."""
import copy
from typing import Sequence

import torch
from mmengine.logging import print_log

from ..deploy import switch_to_deploy
from ..model_utils import build_model, dummy_sample
from ..testing import relative_error, timm_features, timm_peer
from .detector import (RESNET50_MASK_RCNN, keep_all_boxes,
                       load_detector_config, training_batch)
from .timing import autocast_run, interleaved_medians, top_kernels


def gpu_section(report: dict,
                arch: str,
                repeats: int = 5,
                batches: Sequence[int] = (32, 256),
                compile: bool = False,
                device: str = 'cuda',
                shape=(224, 224),
                dtypes=(torch.float16, torch.bfloat16)) -> None:
    """Deployed backbone throughput against timm, in NCHW and with a
    channels-last model and input (what a GPU user runs), at each batch:
    32 is launch-bound on a large GPU, 256 saturates it. With ``compile``
    also the compiled deploy form. Under ``report['gpu']``."""
    peer, ours = timm_peer(arch)
    peer, ours = peer.to(device), ours.to(device)
    deployed = switch_to_deploy(copy.deepcopy(ours))  # on the device
    compiled = switch_to_deploy(
        copy.deepcopy(ours), compile=True) if compile else None
    peer_last = copy.deepcopy(peer).to(memory_format=torch.channels_last)
    peer_run, peer_last_run = timm_features(peer), timm_features(peer_last)
    name = torch.cuda.get_device_name() if device == 'cuda' else device
    section = dict(device=name, shape=list(shape), batches={})
    print_log(f'\n== {name}: backbone throughput, {shape[0]}x{shape[1]}, '
              f'autocast; ratios over timm with the same layout ==')
    for batch in batches:
        image = torch.rand(batch, 3, *shape, device=device)
        image_last = image.contiguous(memory_format=torch.channels_last)
        models = dict(
            ours_deploy=lambda: deployed(image),
            timm_nchw=lambda: peer_run(image),
            timm_channels_last=lambda: peer_last_run(image_last))
        if compiled is not None:
            models['ours_deploy_compiled'] = lambda: compiled(image)
        cases = {
            f'{model}_{str(dtype)[6:]}': autocast_run(run, dtype, device)
            for dtype in dtypes
            for model, run in models.items()
        }
        with torch.no_grad():
            seconds = interleaved_medians(cases, max(repeats, 2) * 2, 3)
            errors = {
                f'deploy_vs_timm_{str(dtype)[6:]}': relative_error(
                    autocast_run(models['ours_deploy'], dtype, device)(),
                    autocast_run(models['timm_nchw'], dtype, device)())
                for dtype in dtypes
            }
        images = {k: batch / v for k, v in seconds.items()}
        ratios = {}
        for key, value in images.items():
            dtype = key.rsplit('_', 1)[1]
            ratios[key] = dict(
                over_timm_channels_last=value /
                images[f'timm_channels_last_{dtype}'],
                over_timm_nchw=value / images[f'timm_nchw_{dtype}'])
            print_log(
                f'batch {batch:4d} {key:36s} {value:9.0f} img/s   / timm '
                f'channels-last {ratios[key]["over_timm_channels_last"]:.2f}'
                f'   / timm NCHW {ratios[key]["over_timm_nchw"]:.2f}')
        section['batches'][batch] = dict(
            images_per_s=images, ratios=ratios, errors=errors)
    if device == 'cuda':
        batch = batches[-1]
        image = torch.rand(batch, 3, *shape, device=device)
        section['top_kernels_ms'] = {
            model: top_kernels(
                autocast_run(run, torch.bfloat16, device), device)
            for model, run in dict(
                ours_deploy=lambda: deployed(image),
                timm_channels_last=lambda: peer_last_run(
                    image.contiguous(memory_format=torch.channels_last))
            ).items()
        }
    report['gpu'] = section


def gpu_train_section(report: dict,
                      arch: str,
                      repeats: int = 5,
                      device: str = 'cuda',
                      batch: int = 64,
                      shape=(224, 224),
                      dtype: torch.dtype = torch.bfloat16) -> None:
    """One backbone training step (forward and backward under autocast,
    channels-last model and input for both) against timm, under
    ``report['gpu_train_step']``."""
    peer, ours = timm_peer(arch)
    peer = peer.to(device).to(memory_format=torch.channels_last).train()
    ours = ours.to(device).to(memory_format=torch.channels_last).train()
    image = torch.rand(batch, 3, *shape, device=device).contiguous(
        memory_format=torch.channels_last)

    def step(run):

        def wrapped():
            with torch.autocast(device, dtype=dtype):
                loss = sum(f.float().mean() for f in run(image))
            loss.backward()
            if device == 'cuda':
                torch.cuda.synchronize()

        return wrapped

    seconds = interleaved_medians(
        dict(ours=step(ours), timm=step(timm_features(peer))),
        max(repeats, 4), 2)
    report['gpu_train_step'] = dict(
        batch=batch,
        shape=list(shape),
        ms={k: v * 1e3
            for k, v in seconds.items()},
        timm_over_ours=seconds['timm'] / seconds['ours'])
    print_log(f"\n== backbone training step, batch {batch}, "
              f"{str(dtype)[6:]} autocast: ours {seconds['ours'] * 1e3:.1f} "
              f"ms, timm {seconds['timm'] * 1e3:.1f} ms, timm / ours = "
              f"{seconds['timm'] / seconds['ours']:.2f}")


def gpu_detector_section(report: dict,
                         config: str,
                         repeats: int = 5,
                         device: str = 'cuda',
                         shape=(800, 1216),
                         boxes: int = 10) -> None:
    """Mask R-CNN with the FasterNet of ``config`` against ResNet-50 on
    the device: predict at batch 1 (deployed, fp32), and a training step
    at batch 2 under fp16 autocast, as MMEngine's AmpOptimWrapper runs it,
    with ``boxes`` boxes and masks per image. Under
    ``report['gpu_mask_rcnn']``."""
    sources = dict(fasternet=config, resnet50=RESNET50_MASK_RCNN)
    models = {
        name: build_model(keep_all_boxes(
            load_detector_config(source))).to(device)
        for name, source in sources.items()
    }
    images, samples = training_batch(2, shape, boxes, device)

    def train_step(model):

        def run():
            # fp16 over the whole forward as AmpOptimWrapper does; mmcv's
            # NMS takes fp16 on CUDA only, so elsewhere (tests) fp32.
            with torch.autocast(
                    device, dtype=torch.float16, enabled=device == 'cuda'):
                losses = model(images, samples, mode='loss')
            sum(v.sum() if torch.is_tensor(v) else sum(v)
                for k, v in losses.items() if 'loss' in k).backward()
            if device == 'cuda':
                torch.cuda.synchronize()

        return run

    for model in models.values():
        model.train()
    train = interleaved_medians(
        {name: train_step(model)
         for name, model in models.items()}, max(repeats, 4), 2)
    image = images[:1]

    def predict(model):

        def run():
            out = model(image, [dummy_sample('mmdet', *shape)],
                        mode='predict')
            if device == 'cuda':
                torch.cuda.synchronize()
            return out

        return run

    for model in models.values():
        switch_to_deploy(model)
    with torch.no_grad():
        predict_s = interleaved_medians(
            {name: predict(model)
             for name, model in models.items()}, max(repeats, 4), 2)
    report['gpu_mask_rcnn'] = dict(
        predict_ms={k: v * 1e3
                    for k, v in predict_s.items()},
        train_step_ms={k: v * 1e3
                       for k, v in train.items()},
        over_resnet50=dict(
            predict=predict_s['fasternet'] / predict_s['resnet50'],
            train_step=train['fasternet'] / train['resnet50']))
    print_log(f'\n== Mask R-CNN, {shape[0]}x{shape[1]}: predict (batch 1, '
              f'deployed, fp32) and training step (batch 2, fp16 '
              f'autocast) ==')
    for name in models:
        print_log(f'{name:10s} predict {predict_s[name] * 1e3:7.1f} ms   '
                  f'train step {train[name] * 1e3:7.1f} ms')


def plot_gpu_throughput(report: dict, path: str) -> None:
    """The images per second of ``report['gpu']`` at each batch, as bars
    in a PNG at ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    section = report['gpu']
    fig, axes = plt.subplots(
        1, len(section['batches']), figsize=(5 * len(section['batches']), 4))
    for ax, (batch, entry) in zip(
            getattr(axes, 'flat', [axes]), section['batches'].items()):
        names = list(entry['images_per_s'])
        ax.barh(names, [entry['images_per_s'][n] for n in names])
        ax.set_title(f"{section['device']}, batch {batch}")
        ax.set_xlabel('images / s')
        ax.tick_params(axis='y', labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
