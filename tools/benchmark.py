"""Time FasterNet against its peers in one process and print ratios.

Compares, at batch 1: (a) our backbone in training form (eval mode), (b) the
same after ``switch_to_deploy()``, (c) timm's ``fasternet_*`` with the same
weights through ``forward_intermediates``, (d) mmdet's ResNet-50; then bf16
autocast, one training step against timm, and full Mask R-CNN predict with
FasterNet against ResNet-50 (stock, and with the same RoIAlign swap and
bf16 heads). With CUDA: deployed fp16/bf16 throughput at batch 32 and 256
against timm in NCHW and channels-last, the kernels that take the most time,
a backbone training step against timm, and Mask R-CNN predict and training
step against ResNet-50 (``--gpu-only`` for that alone). Writes JSON and
plots. ``--onnx`` instead times end-to-end ONNX detectors in onnxruntime
against the deployed PyTorch predict on the CPU.

    python tools/benchmark.py --arch s --out work_dirs/benchmark
"""
import argparse
import copy
import os
import os.path as osp

import torch
from mmengine.registry import MODELS, init_default_scope

from fasternet_mm import switch_to_deploy, use_fp32, use_low_precision
from fasternet_mm.benchmark import (autocast_run, dump_report, gemm_gflops,
                                    interleaved_medians,
                                    saved_activation_bytes)
from fasternet_mm.builder import dummy_sample
from fasternet_mm.cli import exit_on_user_error
from fasternet_mm.complexity import count_macs, count_parameters
from fasternet_mm.preflight import PreflightError
from fasternet_mm.testing import relative_error, timm_features, timm_peer

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
        '--gpu-batches',
        type=int,
        nargs='+',
        default=[32, 256],
        help='batches of the GPU throughput timing at 224x224, which runs '
        'when CUDA is available')
    parser.add_argument(
        '--gpu-compile',
        action='store_true',
        help='also time the compiled deploy form on the GPU (compiling '
        'takes about a minute per batch size)')
    parser.add_argument(
        '--gpu-only', action='store_true', help='only the GPU timing')
    parser.add_argument(
        '--configs',
        nargs='+',
        help='only time these detector configs against each other')
    parser.add_argument(
        '--config-shape',
        default='640x640',
        help='HxW of the --configs timing')
    parser.add_argument(
        '--onnx',
        action='store_true',
        help='only time end-to-end ONNX models (onnxruntime, CPU) against '
        'the deployed PyTorch predict: Mask R-CNN-S at 800x1216 and '
        'RTMDet-tiny-T0 at 640x640')
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
                use_low_precision(model)
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


def configs_section(args, report):
    """Neck, network (tensor mode) and predict latency of whole detectors,
    as built (eval mode) and after ``switch_to_deploy``, with random
    weights at batch 1."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    shape = tuple(int(v) for v in args.config_shape.split('x'))
    image = torch.rand(1, 3, *shape)
    cases, models = {}, {}
    for path in args.configs:
        cfg = Config.fromfile(path)
        init_default_scope(cfg.default_scope)
        cfg.model.backbone.init_cfg = None
        # Random weights score boxes anywhere around the thresholds, so
        # post-processing would depend on chance: score_thr=0 keeps the
        # same number of boxes for every model (and the mask head runs).
        test_cfg = cfg.model.get('test_cfg') or {}
        for part in (test_cfg, test_cfg.get('rcnn')):
            if part is not None and 'score_thr' in part:
                part.score_thr = 0.0
        name = osp.splitext(osp.basename(path))[0]
        built = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
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
        seconds = interleaved_medians(cases, args.repeats)
    first = osp.splitext(osp.basename(args.configs[0]))[0]
    report['configs'] = dict(
        shape=list(shape),
        params_m={k: count_parameters(m) / 1e6
                  for k, m in models.items()},
        neck_params_m={k: count_parameters(m.neck) / 1e6
                       for k, m in models.items()},
        ms={k: v * 1e3
            for k, v in seconds.items()})
    print(f'\n== detectors, batch 1, {shape[0]}x{shape[1]}, random weights; '
          f'ratios against {first} ==')
    for name, model in models.items():
        print(f'{name}: params {count_parameters(model) / 1e6:.2f}M, neck '
              f'{count_parameters(model.neck) / 1e6:.2f}M')
    for key, value in seconds.items():
        name, part = key.split('/')
        base = f"{first}{'_deploy' if name.endswith('_deploy') else ''}"
        print(f'{key:60s} {value * 1e3:9.1f} ms   / {base} = '
              f"{value / seconds[f'{base}/{part}']:.2f}")


def onnx_section(args, report, cases=None):
    """End to end on the CPU, fp32, batch 1, random weights: onnxruntime
    running the ``--end-to-end`` export of a detector against the deployed
    PyTorch model's ``predict``, on the same preprocessed input. For Mask
    R-CNN, predict pastes the masks into the image, so the ONNX side is
    also timed with the reader's pasting (``tools/onnx_demo.py``)."""
    import importlib.util
    import tempfile

    import onnxruntime
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm

    from fasternet_mm.end_to_end import end_to_end_graph, export_end_to_end
    spec = importlib.util.spec_from_file_location(
        'onnx_demo', osp.join(REPO, 'tools/onnx_demo.py'))
    reader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reader)
    cases = cases or (('mask_rcnn_fasternet_s', (800, 1216)),
                      ('rtmdet_tiny_fasternet_t0_pafpn_coco', (640, 640)))
    threads = torch.get_num_threads()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle onnxruntime threads would spin on the cores while PyTorch runs.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    timings, counts = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in cases:
            cfg = Config.fromfile(osp.join(REPO, 'configs', f'{name}.py'))
            init_default_scope(cfg.default_scope)
            cfg.model.backbone.init_cfg = None
            # As the detector section: random weights score around the
            # thresholds, so keep max_per_img boxes (the mask head runs).
            test_cfg = cfg.model.test_cfg
            for part in (test_cfg, test_cfg.get('rcnn')):
                if part is not None and 'score_thr' in part:
                    part.score_thr = 0.0
            torch.manual_seed(0)
            model = switch_to_deploy(
                revert_sync_batchnorm(MODELS.build(cfg.model)))
            path = osp.join(tmp, f'{osp.basename(name)}.onnx')
            export_end_to_end(end_to_end_graph(model), path, shape)
            runtime = onnxruntime.InferenceSession(
                path, options, providers=['CPUExecutionProvider'])
            names = [o.name for o in runtime.get_outputs()]
            image = torch.rand(1, 3, *shape)
            feed = {'image': image.numpy()}

            def pytorch(model=model, shape=shape, image=image):
                return model(
                    image, [dummy_sample('mmdet', *shape)], mode='predict')

            def ort(runtime=runtime, feed=feed):
                return runtime.run(None, feed)

            def ort_pasted(runtime=runtime, feed=feed, names=names,
                           shape=shape):
                outputs = dict(zip(names, runtime.run(None, feed)))
                info = dict(
                    image_shape=shape, ori_shape=shape, scale_factor=(1, 1))
                return reader.postprocess(outputs, info,
                                          dict(task='instance',
                                               mask_threshold=0.5))

            timings[f'{name}/pytorch_predict'] = pytorch
            timings[f'{name}/onnxruntime'] = ort
            if 'masks' in names:
                timings[f'{name}/onnxruntime_and_paste'] = ort_pasted
            with torch.no_grad():
                counts[name] = dict(
                    pytorch=len(pytorch()[0].pred_instances),
                    onnxruntime=len(ort()[1]))
        with torch.no_grad():
            seconds = interleaved_medians(timings, args.repeats)
    report['onnx'] = dict(
        threads=threads,
        onnxruntime=onnxruntime.__version__,
        detections=counts,
        ms={k: v * 1e3
            for k, v in seconds.items()})
    print(f'\n== end to end, CPU fp32, batch 1, {threads} threads, random '
          f'weights (score_thr 0): onnxruntime {onnxruntime.__version__} '
          f'against the deployed PyTorch predict ==')
    for name, _ in cases:
        base = seconds[f'{name}/pytorch_predict']
        print(f'{name}: detections {counts[name]}')
        for key, value in seconds.items():
            if key.startswith(f'{name}/'):
                print(f'  {key.split("/")[1]:24s} {value * 1e3:9.1f} ms   '
                      f'pytorch / this = {base / value:.2f}')


def gpu_section(args,
                report,
                device='cuda',
                batches=None,
                shape=(224, 224),
                dtypes=(torch.float16, torch.bfloat16)):
    """Deployed backbone throughput against timm, in NCHW and with a
    channels-last model and input (what a GPU user runs), at each batch:
    32 is launch-bound on a large GPU, 256 saturates it. Also the compiled
    deploy form (``--gpu-compile``)."""
    batches = batches or args.gpu_batches
    peer, ours = timm_peer(args.arch)
    peer, ours = peer.to(device), ours.to(device)
    deployed = switch_to_deploy(copy.deepcopy(ours))  # on the device
    compiled = switch_to_deploy(
        copy.deepcopy(ours), compile=True) if args.gpu_compile else None
    peer_last = copy.deepcopy(peer).to(memory_format=torch.channels_last)
    peer_run, peer_last_run = timm_features(peer), timm_features(peer_last)
    name = torch.cuda.get_device_name() if device == 'cuda' else device
    section = dict(device=name, shape=list(shape), batches={})
    print(f'\n== {name}: backbone throughput, {shape[0]}x{shape[1]}, '
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
            seconds = interleaved_medians(cases, max(args.repeats, 2) * 2, 3)
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
            print(f'batch {batch:4d} {key:36s} {value:9.0f} img/s   / timm '
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


def top_kernels(run, device, count=12):
    """The ``count`` kernels that take the most device time in one call of
    ``run``, in ms: where a deploy form loses to its peer."""
    from torch.profiler import ProfilerActivity, profile
    with torch.no_grad():
        run()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            run()
    totals = {}
    for event in prof.events():
        if event.device_type.name == device.upper():
            totals[event.name] = totals.get(event.name, 0) + \
                event.device_time_total / 1e3
    return dict(sorted(totals.items(), key=lambda kv: -kv[1])[:count])


def gpu_train_section(args, report, device='cuda', batch=64,
                      shape=(224, 224), dtype=torch.bfloat16):
    """One backbone training step (forward and backward under autocast,
    channels-last model and input for both) against timm."""
    peer, ours = timm_peer(args.arch)
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
        max(args.repeats, 4), 2)
    report['gpu_train_step'] = dict(
        batch=batch,
        shape=list(shape),
        ms={k: v * 1e3
            for k, v in seconds.items()},
        timm_over_ours=seconds['timm'] / seconds['ours'])
    print(f"\n== backbone training step, batch {batch}, {str(dtype)[6:]} "
          f"autocast: ours {seconds['ours'] * 1e3:.1f} ms, timm "
          f"{seconds['timm'] * 1e3:.1f} ms, timm / ours = "
          f"{seconds['timm'] / seconds['ours']:.2f}")


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


def amp_train_section(args, report, shape=(256, 256), batch=4, boxes=4):
    """``tools/train.py --amp`` on a CPU: one training step of the demo's
    Mask R-CNN (T0, 64-channel heads) in fp32 against bf16 by parts
    (Bf16TrainingHook's use_low_precision), interleaved."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    init_default_scope('mmdet')
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'))
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).train()
    images, samples = training_batch(batch, shape, boxes, 'cpu')

    def step(bf16):

        def run():
            if bf16:
                use_low_precision(model)
            try:
                losses = model(images, samples, mode='loss')
                sum(v.sum() if torch.is_tensor(v) else sum(v)
                    for k, v in losses.items() if 'loss' in k).backward()
            finally:
                use_fp32(model)

        return run

    seconds = interleaved_medians(
        dict(fp32=step(False), amp_bf16=step(True)), max(args.repeats, 4))
    report['amp_train_step'] = dict(
        shape=list(shape),
        batch=batch,
        ms={k: v * 1e3
            for k, v in seconds.items()},
        speedup=seconds['fp32'] / seconds['amp_bf16'])
    print(f"\n== demo Mask R-CNN training step, batch {batch}, "
          f"{shape[0]}x{shape[1]}: fp32 {seconds['fp32'] * 1e3:.0f} ms, "
          f"--amp (bf16 by parts) {seconds['amp_bf16'] * 1e3:.0f} ms: "
          f"{seconds['fp32'] / seconds['amp_bf16']:.2f}x")


def gpu_detector_section(args, report, device='cuda', shape=(800, 1216),
                         boxes=10):
    """Mask R-CNN with FasterNet against ResNet-50 on the device: predict
    at batch 1 (deployed, fp32), and a training step at batch 2 under fp16
    autocast, as MMEngine's AmpOptimWrapper runs it, with ``boxes`` boxes
    and masks per image."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    init_default_scope('mmdet')
    ours = osp.join(REPO, f'configs/mask_rcnn_fasternet_{args.arch}.py')
    sources = dict(
        fasternet=ours,
        resnet50="_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n")
    models = {}
    for name, source in sources.items():
        cfg = Config.fromfile(source) if source.endswith('.py') else \
            Config.fromstring(source, file_format='.py')
        cfg.model.backbone.init_cfg = None
        cfg.model.test_cfg.rcnn.score_thr = 0.0  # random weights
        models[name] = revert_sync_batchnorm(MODELS.build(
            cfg.model)).to(device)
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
         for name, model in models.items()}, max(args.repeats, 4), 2)
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
             for name, model in models.items()}, max(args.repeats, 4), 2)
    report['gpu_mask_rcnn'] = dict(
        predict_ms={k: v * 1e3
                    for k, v in predict_s.items()},
        train_step_ms={k: v * 1e3
                       for k, v in train.items()},
        over_resnet50=dict(
            predict=predict_s['fasternet'] / predict_s['resnet50'],
            train_step=train['fasternet'] / train['resnet50']))
    print(f'\n== Mask R-CNN, {shape[0]}x{shape[1]}: predict (batch 1, '
          f'deployed, fp32) and training step (batch 2, fp16 autocast) ==')
    for name in models:
        print(f'{name:10s} predict {predict_s[name] * 1e3:7.1f} ms   train '
              f'step {train[name] * 1e3:7.1f} ms')


def gpu_plot(report, path):
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


def gemm_section(args, report):
    gemm = gemm_gflops(torch.float32)
    gemm_bf16 = gemm_gflops(torch.bfloat16)
    report.update(
        threads=torch.get_num_threads(),
        gemm_gflops_per_s=dict(fp32=gemm, bf16=gemm_bf16))
    print(f'FasterNet-{args.arch.upper()}, {torch.get_num_threads()} '
          f'threads; GEMM: fp32 {gemm:.0f} GFLOP/s, bf16 {gemm_bf16:.0f} '
          f'GFLOP/s')


def sections(args, shapes):
    """The parts of a run in order, as ``(name, run(report))``: the GPU ones
    where CUDA is available, then (unless ``--gpu-only``) the CPU ones."""
    parts = []
    if torch.cuda.is_available():
        parts.append(('gpu', lambda report: gpu_section(args, report)))
        if not args.skip_train:
            parts.append(('gpu_train_step',
                          lambda report: gpu_train_section(args, report)))
        if not args.skip_detector:
            parts.append(('gpu_mask_rcnn',
                          lambda report: gpu_detector_section(args, report)))
    if args.gpu_only:
        return parts
    parts.append(('gemm', lambda report: gemm_section(args, report)))
    for shape in shapes:
        parts.append((f'backbone {shape[0]}x{shape[1]}',
                      lambda report, shape=shape: backbone_section(
                          args, shape, report['gemm_gflops_per_s']['fp32'],
                          report)))
    if not args.skip_train:
        parts.append(('train_step',
                      lambda report: train_section(args, shapes[-1], report)))
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            parts.append(('amp_train_step',
                          lambda report: amp_train_section(args, report)))
    if not args.skip_detector:
        parts.append(('mask_rcnn_predict',
                      lambda report: detector_section(args, report)))
    return parts


@exit_on_user_error
def main(argv=None):
    args = parse_args(argv)
    shapes = [
        tuple(int(v) for v in s.split('x')) for s in args.shapes.split(',')
    ]
    os.makedirs(args.out, exist_ok=True)
    if args.onnx:
        report = {}
        onnx_section(args, report)
        dump_report(report, osp.join(args.out, 'benchmark_onnx.json'))
        print(f'\nwrote {args.out}/benchmark_onnx.json')
        return
    if args.configs:
        report = dict(threads=torch.get_num_threads())
        configs_section(args, report)
        dump_report(report, osp.join(args.out, 'benchmark_configs.json'))
        print(f'\nwrote {args.out}/benchmark_configs.json')
        return
    if args.gpu_only and not torch.cuda.is_available():
        raise PreflightError('--gpu-only: CUDA is not available here')
    name = 'benchmark_gpu' if args.gpu_only else 'benchmark'
    path = osp.join(args.out, f'{name}.json')
    # Written after each section, so that a run cut by a time limit still
    # leaves the figures of the sections it finished.
    report = dict(
        arch=args.arch, backbone={}, train_step={}, finished=[],
        complete=False)
    for section, run in sections(args, shapes):
        run(report)
        report['finished'].append(section)
        dump_report(report, path)
    report['complete'] = True
    dump_report(report, path)
    if args.gpu_only:
        gpu_plot(report, osp.join(args.out, 'gpu_throughput.png'))
        print(f'\nwrote {path} and gpu_throughput.png')
        return
    plot(report, osp.join(args.out, 'latency_vs_params.png'))
    print(f'\nwrote {path} and latency_vs_params.png')


if __name__ == '__main__':
    main()
