"""Time FasterNet against its peers in one process and print ratios.

Compares, at batch 1: (a) our backbone in training form (eval mode), (b) the
same after ``switch_to_deploy()``, (c) timm's ``fasternet_*`` with the same
weights through ``forward_intermediates``, (d) mmdet's ResNet-50; then bf16
autocast, one training step against timm, and full Mask R-CNN predict with
FasterNet against ResNet-50 (stock, and with the same RoIAlign swap and
bf16 heads); with CUDA, deployed batch-32 fp16/bf16 throughput against
timm on the GPU. Writes JSON and a latency-vs-parameters plot.

    python tools/benchmark.py --arch s --out work_dirs/benchmark
"""
import argparse
import copy
import json
import os
import os.path as osp

import torch
from mmengine.registry import MODELS, init_default_scope

from fasternet_mm import switch_to_deploy, use_bf16, use_fp32
from fasternet_mm.benchmark import (autocast_run, gemm_gflops,
                                    interleaved_medians,
                                    saved_activation_bytes, timm_features,
                                    timm_peer)
from fasternet_mm.cli import exit_on_user_error
from fasternet_mm.complexity import (count_macs, count_parameters,
                                     dummy_sample, relative_error)
from fasternet_mm.preflight import PreflightError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', default='s', help='FasterNet arch')
    parser.add_argument(
        '--shapes', default='224x224,800x1216', help='HxW,HxW,...')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out', default='work_dirs/benchmark')
    parser.add_argument(
        '--skip-detector', action='store_true', help='no Mask R-CNN timing')
    parser.add_argument(
        '--skip-train', action='store_true', help='no training-step timing')
    parser.add_argument(
        '--gpu-batch',
        type=int,
        default=32,
        help='batch of the GPU throughput timing, which runs at 224x224 '
        'when CUDA is available')
    parser.add_argument(
        '--gpu-only', action='store_true', help='only the GPU timing')
    return parser.parse_args(argv)


def backbone_section(args, shape, gemm, report):
    peer, ours = timm_peer(args.arch)
    deployed = switch_to_deploy(copy.deepcopy(ours))
    from mmdet.models.backbones import ResNet
    resnet = ResNet(depth=50)
    resnet.eval()  # mmdet's ResNet.train() returns None
    image = torch.rand(1, 3, *shape)
    peer_run = timm_features(peer)
    cases = {
        'ours': lambda: ours(image),
        'ours_deploy': lambda: deployed(image),
        'timm': lambda: peer_run(image),
        'resnet50': lambda: resnet(image),
    }
    cases['ours_deploy_bf16'] = autocast_run(cases['ours_deploy'])
    cases['timm_bf16'] = autocast_run(cases['timm'])
    with torch.no_grad():
        seconds = interleaved_medians(cases, args.repeats)
        reference = peer_run(image)
        errors = {
            'ours_vs_timm':
            relative_error(ours(image), reference),
            'deploy_vs_timm':
            relative_error(deployed(image), reference),
            'deploy_bf16_vs_fp32':
            relative_error(cases['ours_deploy_bf16'](), deployed(image)),
        }
    macs = count_macs(ours, image)
    achieved = 2 * macs / seconds['ours_deploy'] / 1e9
    key = f'{shape[0]}x{shape[1]}'
    report['backbone'][key] = dict(
        ms={
            k: v * 1e3
            for k, v in seconds.items()
        },
        ratio_vs_timm_fp32={
            k: seconds['timm'] / v
            for k, v in seconds.items()
        },
        errors=errors,
        gmacs=macs / 1e9,
        deploy_gflops_per_s=achieved,
        deploy_fraction_of_gemm=achieved / gemm,
        params_m={
            'ours': count_parameters(ours) / 1e6,
            'timm': count_parameters(peer) / 1e6,
            'resnet50': count_parameters(resnet) / 1e6
        })
    print(f'\n== backbone, batch 1, {key} ({macs / 1e9:.1f} GMACs) ==')
    for name, value in seconds.items():
        print(f'{name:18s} {value * 1e3:9.1f} ms   timm_fp32 / this = '
              f"{seconds['timm'] / value:5.2f}")
    print(f'deploy fp32: {achieved:.0f} GFLOP/s = '
          f'{achieved / gemm:.0%} of the fp32 GEMM rate')
    print('max relative error: ' + ', '.join(f'{k} {v:.1e}'
                                             for k, v in errors.items()))


def train_section(args, shape, report):
    peer, ours = timm_peer(args.arch)
    peer.train()
    ours.train()
    image = torch.rand(1, 3, *shape)

    def step(run):

        def wrapped():
            sum(f.float().mean() for f in run(image)).backward()

        return wrapped

    runs = {'ours': step(ours), 'timm': step(timm_features(peer))}
    # Two rounds once gave 0.86x where twelve gave 1.00x: steps vary more.
    seconds = interleaved_medians(runs, max(args.repeats, 4))
    saved = {name: saved_activation_bytes(run) for name, run in runs.items()}
    key = f'{shape[0]}x{shape[1]}'
    report['train_step'][key] = dict(
        ms={
            k: v * 1e3
            for k, v in seconds.items()
        },
        timm_over_ours=seconds['timm'] / seconds['ours'],
        saved_activation_mib={
            k: v / 2**20
            for k, v in saved.items()
        })
    print(f'\n== training step (forward + backward), {key} ==')
    print(f"ours {seconds['ours'] * 1e3:.0f} ms, timm "
          f"{seconds['timm'] * 1e3:.0f} ms: timm / ours = "
          f"{seconds['timm'] / seconds['ours']:.2f}")
    print(f"activations kept for backward: ours {saved['ours'] / 2**20:.0f} "
          f"MiB, timm {saved['timm'] / 2**20:.0f} MiB")


def detector_section(args, report):
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    init_default_scope('mmdet')
    shape = (800, 1216)
    resnet = "_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n"
    ours = osp.join(REPO, f'configs/mask_rcnn_fasternet_{args.arch}.py')
    sources = dict(
        fasternet=ours,
        fasternet_deploy=ours,
        resnet50=resnet,
        resnet50_deploy=resnet)
    models = {}
    for name, source in sources.items():
        cfg = Config.fromfile(source) if source.endswith('.py') else \
            Config.fromstring(source, file_format='.py')
        cfg.model.backbone.init_cfg = None
        # Random weights score every class below the usual 0.05: keep the
        # top 100 boxes, as a trained model does, so the mask head runs.
        cfg.model.test_cfg.rcnn.score_thr = 0.0
        models[name] = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
    switch_to_deploy(models['fasternet_deploy'])
    switch_to_deploy(models['resnet50_deploy'])  # its RoIAlign only
    image = torch.rand(1, 3, *shape)

    def predict(model, bf16=False):

        def run():
            if bf16:
                use_bf16(model)
            try:
                return model(
                    image, [dummy_sample('mmdet', *shape)], mode='predict')
            finally:
                use_fp32(model)

        return run

    cases = {name: predict(model) for name, model in models.items()}
    for name in ('fasternet_deploy', 'resnet50_deploy'):
        cases[f'{name}_bf16'] = predict(models[name], bf16=True)
    with torch.no_grad():
        seconds = interleaved_medians(cases, max(args.repeats // 2, 2))
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
    print('\n== Mask R-CNN predict, 800x1216, random weights, top 100 '
          'boxes to the mask head ==\n_deploy: switch_to_deploy (BN '
          'folded, GatherRoIAlign); _bf16: backbone, neck and heads under '
          'bf16 autocast')
    for name, value in seconds.items():
        print(f'{name:22s} {value * 1e3:9.1f} ms   / resnet50 fp32 = '
              f'{value / base:.2f}')


def gpu_section(args,
                report,
                device='cuda',
                batch=None,
                shape=(224, 224),
                dtypes=(torch.float16, torch.bfloat16)):
    """Deployed throughput against timm's at one batch, under autocast to
    each of ``dtypes``; also the deploy form with channels-last on every
    map (the per-size rule was measured on CPU)."""
    batch = batch or args.gpu_batch
    peer, ours = timm_peer(args.arch)
    deployed = switch_to_deploy(copy.deepcopy(ours))
    all_last = copy.deepcopy(deployed)
    all_last.channels_last_min_pixels = 0
    for model in (peer, deployed, all_last):
        model.to(device)
    image = torch.rand(batch, 3, *shape, device=device)
    peer_run = timm_features(peer)
    models = dict(
        ours_deploy=lambda: deployed(image),
        ours_deploy_all_channels_last=lambda: all_last(image),
        timm=lambda: peer_run(image))

    cases = {
        f'{name}_{str(dtype)[6:]}': autocast_run(run, dtype, device)
        for dtype in dtypes
        for name, run in models.items()
    }
    with torch.no_grad():
        seconds = interleaved_medians(cases, max(args.repeats, 2) * 2, 3)
        errors = {
            f'deploy_vs_timm_{str(dtype)[6:]}':
            relative_error(
                autocast_run(models['ours_deploy'], dtype, device)(),
                autocast_run(models['timm'], dtype, device)())
            for dtype in dtypes
        }
    name = torch.cuda.get_device_name() if device == 'cuda' else device
    images = {k: batch / v for k, v in seconds.items()}
    report['gpu'] = dict(
        device=name,
        batch=batch,
        shape=list(shape),
        images_per_s=images,
        ratio_vs_timm={
            k: images[k] / images['timm_' + k.rsplit('_', 1)[1]]
            for k in images
        },
        errors=errors)
    print(f'\n== {name}: deployed throughput, batch {batch}, '
          f'{shape[0]}x{shape[1]}, autocast ==')
    for key, value in images.items():
        peer_key = 'timm_' + key.rsplit('_', 1)[1]
        print(f'{key:40s} {value:9.0f} img/s   this / timm = '
              f'{value / images[peer_key]:.2f}')
    print('max relative error: ' + ', '.join(f'{k} {v:.1e}'
                                             for k, v in errors.items()))


def plot(report, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    key = list(report['backbone'])[-1]
    entry = report['backbone'][key]
    fig, ax = plt.subplots(figsize=(6, 4))
    params_m = entry['params_m']
    for name, ms in entry['ms'].items():
        owner = 'resnet50' if name.startswith('resnet') else (
            'timm' if name.startswith('timm') else 'ours')
        ax.scatter(params_m[owner], ms, label=name)
    ax.set_xlabel('backbone parameters (M)')
    ax.set_ylabel(f'latency at batch 1, {key} (ms)')
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    shapes = [
        tuple(int(v) for v in s.split('x')) for s in args.shapes.split(',')
    ]
    os.makedirs(args.out, exist_ok=True)
    report = dict(arch=args.arch, backbone={}, train_step={})
    if torch.cuda.is_available():
        gpu_section(args, report)
    elif args.gpu_only:
        raise PreflightError('--gpu-only: CUDA is not available here')
    if args.gpu_only:
        with open(osp.join(args.out, 'benchmark_gpu.json'), 'w') as f:
            json.dump(report, f, indent=2)
        print(f'\nwrote {args.out}/benchmark_gpu.json')
        return
    gemm = gemm_gflops(torch.float32)
    gemm_bf16 = gemm_gflops(torch.bfloat16)
    report.update(
        threads=torch.get_num_threads(),
        gemm_gflops_per_s=dict(fp32=gemm, bf16=gemm_bf16))
    print(f'FasterNet-{args.arch.upper()}, {torch.get_num_threads()} '
          f'threads; GEMM: fp32 {gemm:.0f} GFLOP/s, bf16 {gemm_bf16:.0f} '
          f'GFLOP/s')
    for shape in shapes:
        backbone_section(args, shape, gemm, report)
    if not args.skip_train:
        train_section(args, shapes[-1], report)
    if not args.skip_detector:
        detector_section(args, report)
    with open(osp.join(args.out, 'benchmark.json'), 'w') as f:
        json.dump(report, f, indent=2)
    plot(report, osp.join(args.out, 'latency_vs_params.png'))
    print(f'\nwrote {args.out}/benchmark.json and latency_vs_params.png')


if __name__ == '__main__':
    main()
