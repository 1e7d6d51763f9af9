import json
import math

import pytest
import torch
from helpers import REPO, build, load_tool
from mmengine.config import Config

from fasternet_mm import use_amp
from fasternet_mm.benchmark import interleaved_medians
from fasternet_mm.complexity import count_parameters
from fasternet_mm.testing import relative_error, timm_peer


def test_interleaved_medians_rotates_the_order():
    calls = []
    medians = interleaved_medians(
        {
            'a': lambda: calls.append('a'),
            'b': lambda: calls.append('b')
        },
        repeats=3,
        warmup=1)
    assert calls == ['a', 'b', 'a', 'b', 'b', 'a', 'a', 'b']
    assert set(medians) == {'a', 'b'} and all(v >= 0 for v in medians.values())


def test_relative_error():
    ref = (torch.tensor([1.0, -4.0]), )
    assert relative_error((torch.tensor([1.0, -3.0]), ), ref) == 0.25


def test_timm_peer_has_the_same_weights():
    pytest.importorskip('timm')
    peer, ours = timm_peer('t0')
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        theirs = peer.forward_intermediates(x, intermediates_only=True)
        assert relative_error(ours(x), theirs) < 1e-6


def test_bf16_backbone_hands_on_fp32():
    _, ours = timm_peer('t0')
    use_amp(ours, [""], allow_emulated=True)
    outputs = ours(torch.rand(1, 3, 64, 64))
    assert all(o.dtype == torch.float32 for o in outputs)


def test_saved_activation_bytes_counts_what_backward_keeps():
    from fasternet_mm.benchmark import saved_activation_bytes
    x = torch.rand(1000, requires_grad=True)
    # sin saves its input (x: 4000 bytes); the sum saves nothing large.
    assert saved_activation_bytes(lambda: x.sin().sum()) == 4000


def recorded_medians(monkeypatch, module):
    """Make ``module`` time with an ``interleaved_medians`` that keeps what
    each call returned: the seconds a report must be computed from."""
    medians = []

    def record(*args, **kwargs):
        medians.append(interleaved_medians(*args, **kwargs))
        return medians[-1]

    monkeypatch.setattr(module, 'interleaved_medians', record)
    return medians


def test_gpu_section_runs_on_any_device(monkeypatch):
    pytest.importorskip('timm')
    from fasternet_mm.benchmark import gpu as gpu_benchmark
    from fasternet_mm.benchmark.gpu import gpu_section, gpu_train_section
    medians = recorded_medians(monkeypatch, gpu_benchmark)
    report = {}
    gpu_section(
        report,
        't0',
        repeats=1,
        device='cpu',
        batches=(1, 2),
        shape=(64, 64),
        dtypes=(torch.bfloat16, ))
    gpu = report['gpu']
    assert list(gpu['batches']) == [1, 2]
    for (batch, entry), seconds in zip(gpu['batches'].items(), medians):
        assert set(seconds) == set(entry['images_per_s']) == {
            'ours_deploy_bfloat16', 'timm_nchw_bfloat16',
            'timm_channels_last_bfloat16'
        }
        assert all(0 < s < math.inf for s in seconds.values())
        for name, images in entry['images_per_s'].items():
            assert images == pytest.approx(batch / seconds[name])
            # A throughput ratio is the peer's time over this model's.
            ratios = entry['ratios'][name]
            assert ratios['over_timm_nchw'] == pytest.approx(
                seconds['timm_nchw_bfloat16'] / seconds[name])
            assert ratios['over_timm_channels_last'] == pytest.approx(
                seconds['timm_channels_last_bfloat16'] / seconds[name])
        assert 0 <= entry['errors']['deploy_vs_timm_bfloat16'] < 0.05
    gpu_train_section(
        report, 't0', repeats=1, device='cpu', batch=2, shape=(64, 64))
    train, seconds = report['gpu_train_step'], medians[-1]
    assert (train['batch'], train['shape']) == (2, [64, 64])
    assert train['ms'] == pytest.approx(
        {name: s * 1e3
         for name, s in seconds.items()})
    assert set(train['ms']) == {'ours', 'timm'}
    assert all(0 < s < math.inf for s in seconds.values())
    assert train['timm_over_ours'] == pytest.approx(seconds['timm'] /
                                                    seconds['ours'])


def test_dump_report_replaces_the_file_whole_or_not_at_all(tmp_path):
    from fasternet_mm.benchmark import dump_report
    path = tmp_path / 'benchmark.json'
    dump_report(dict(gpu=1), str(path))
    # Fails half-way, after json.dump has written the first key.
    with pytest.raises(TypeError):
        dump_report(dict(gpu=2, plot=object()), str(path))
    assert json.loads(path.read_text()) == dict(gpu=1)
    assert [p.name for p in tmp_path.iterdir()] == ['benchmark.json']


def test_each_section_is_on_disk_before_the_next_one_runs(
        monkeypatch, tmp_path):
    benchmark = load_tool('benchmark')
    path = tmp_path / 'benchmark_gpu.json'
    on_disk = []

    def section(name):

        def run(report, *args, **kwargs):
            on_disk.append(json.loads(path.read_text())['finished']
                           if path.exists() else None)
            report[name] = 1

        return run

    def killed(report, *args):
        raise KeyboardInterrupt  # as a time limit would stop it

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(benchmark, 'gpu_section', section('gpu'))
    monkeypatch.setattr(benchmark, 'gpu_train_section',
                        section('gpu_train_step'))
    monkeypatch.setattr(benchmark, 'gpu_detector_section', killed)
    with pytest.raises(KeyboardInterrupt):
        benchmark.main(['--gpu-only', '--out', str(tmp_path)])
    assert on_disk == [None, ['gpu']]
    report = json.loads(path.read_text())
    assert report['finished'] == ['gpu', 'gpu_train_step']
    assert report['gpu'] == report['gpu_train_step'] == 1
    assert not report['complete']


def test_benchmark_times_configs_against_each_other(monkeypatch, tmp_path):
    from fasternet_mm.benchmark import detector
    benchmark = load_tool('benchmark')
    medians = recorded_medians(monkeypatch, detector)
    names = ('mask_rcnn_fasternet_t0_shapes',
             'mask_rcnn_fasternet_t0_pconv_fpn_shapes')
    configs = [str(REPO / f'configs/demo/{name}.py') for name in names]
    benchmark.main([
        '--repeats', '1', '--config-shape', '96x128', '--out',
        str(tmp_path), '--configs'
    ] + configs)
    report = json.loads((tmp_path / 'benchmark_configs.json').read_text())
    section, (seconds, ) = report['configs'], medians
    assert section['shape'] == [96, 128]
    assert set(section['ms']) == {
        f'{name}{form}/{part}'
        for name in names for form in ('', '_deploy')
        for part in ('neck', 'network', 'predict')
    }
    assert section['ms'] == pytest.approx(
        {key: s * 1e3
         for key, s in seconds.items()})
    assert all(0 < s < math.inf for s in seconds.values())
    # The models as the configs build them, counted here on their own.
    for name, path in zip(names, configs):
        model = build(Config.fromfile(path))
        assert section['params_m'][name] == count_parameters(model) / 1e6
        assert section['neck_params_m'][name] == \
            count_parameters(model.neck) / 1e6
    stock, pconv = names
    assert section['neck_params_m'][pconv] < \
        section['neck_params_m'][stock]


def test_shape_flag_and_its_old_name_shapes():
    benchmark = load_tool('benchmark')
    assert benchmark.parse_args(['--shape', '64x96', '97x131']).shape == [
        '64x96', '97x131'
    ]
    with pytest.warns(FutureWarning, match='--shapes is deprecated; use '
                      '--shape'):
        args = benchmark.parse_args(['--shapes', '64x96,97x131'])
    assert args.shape == ['64x96', '97x131']


def test_cpu_features_read_the_flags(tmp_path, monkeypatch):
    from fasternet_mm.benchmark import cpu_features, describe_cpu
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f '
                       'avx_vnni amx_tile amx_bf16\n')
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported',
                        lambda: False)
    features = cpu_features(str(cpuinfo))
    assert {k: v for k, v in features.items() if k != 'torch_capability'
            } == dict(avx2=True, avx512=True, vnni=True, amx=True,
                      avx512_bf16=False, native_bf16=False)
    assert features['torch_capability'] == \
        torch.backends.cpu.get_cpu_capability()
    assert describe_cpu(features).startswith(
        'CPU: AVX2 yes, AVX-512 yes, VNNI yes, AMX yes, avx512_bf16 no; '
        'torch capability ')
    unknown = cpu_features(str(tmp_path / 'absent'))
    assert unknown['avx2'] is None and 'AVX2 unknown' in describe_cpu(
        unknown)


def test_without_native_bf16_the_benchmark_skips_bf16_and_says_why(
        monkeypatch, tmp_path, capsys):
    benchmark = load_tool('benchmark')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported',
                        lambda: False)
    asked = {}

    def section(name):

        def run(report, *args, **kwargs):
            asked[name] = args[-1]
            report.setdefault('roofline', dict(best_gflops_per_s=1.0))

        return run

    monkeypatch.setattr(benchmark, 'roofline_section', section('roofline'))
    monkeypatch.setattr(benchmark, 'backbone_section', section('backbone'))
    monkeypatch.setattr(benchmark, 'detector_section', section('detector'))
    monkeypatch.setattr(benchmark, 'train_section', section('train'))
    monkeypatch.setattr(benchmark, 'amp_train_section', section('amp'))
    monkeypatch.setattr(benchmark, 'plot_latency_vs_params',
                        lambda report, path: None)
    benchmark.main(['--shape', '64x96', '--out', str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith('CPU: AVX2 ') and 'native bf16 no' in out[0]
    assert out[1] == benchmark.BF16_SKIPPED
    assert 'no native bf16' in out[1]
    # The bf16 timing is off in every section, and --amp's step is gone.
    assert asked == dict(roofline=False, backbone=False, detector=False,
                         train=5)
    report = json.loads((tmp_path / 'benchmark.json').read_text())
    assert report['cpu']['native_bf16'] is False
    assert set(report['cpu']) == {
        'avx2', 'avx512', 'vnni', 'amx', 'avx512_bf16', 'native_bf16',
        'torch_capability'
    }
    assert 'amp_train_step' not in report['finished']


def test_backbone_section_without_bf16_times_fp32_alone():
    pytest.importorskip('timm')
    from fasternet_mm.benchmark.backbone import backbone_section
    report = dict(backbone={})
    backbone_section(
        report, 't0', (64, 96), roofline=1.0, repeats=1, bf16=False)
    entry = report['backbone']['64x96']
    assert set(entry['ms']) == {'ours', 'ours_deploy', 'timm', 'resnet50'}
    assert set(entry['errors']) == {'ours_vs_timm', 'deploy_vs_timm'}


def test_default_run_is_the_short_one_and_full_the_long_one(
        monkeypatch, tmp_path):
    """By default the training step runs at --train-shape and Mask R-CNN
    predict times the deployed FasterNet against ResNet-50 alone; --full
    puts the rest back.
    Either way the report holds each section's wall time and the total."""
    benchmark = load_tool('benchmark')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    asked = {}

    def section(name):

        def run(report, *args, **kwargs):
            asked[name] = (args, kwargs)
            report.setdefault('roofline', dict(best_gflops_per_s=1.0))

        return run

    for name in ('roofline_section', 'backbone_section', 'detector_section',
                 'train_section', 'amp_train_section'):
        monkeypatch.setattr(benchmark, name, section(name))
    monkeypatch.setattr(benchmark, 'plot_latency_vs_params',
                        lambda report, path: None)
    runs = {}
    for flags in ([], ['--full']):
        asked.clear()
        benchmark.main(['--shape', '64x96', '97x131', '--train-shape',
                        '32x48', '--out', str(tmp_path)] + flags)
        runs[bool(flags)] = dict(asked)
        report = json.loads((tmp_path / 'benchmark.json').read_text())
        assert list(report['wall_s']) == report['finished'] + ['total']
        assert report['wall_s']['total'] >= sum(
            v for k, v in report['wall_s'].items() if k != 'total')
    short, full = runs[False], runs[True]
    assert short['train_section'][0][1] == (32, 48)
    assert full['train_section'][0][1] == (97, 131)
    assert short['detector_section'][1] == dict(full=False)
    assert full['detector_section'][1] == dict(full=True)


def test_nominal_peak_reads_the_clock(tmp_path):
    from fasternet_mm.benchmark.timing import nominal_peak_gflops
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\ncpu MHz\t\t: 2000.000\n')
    # 2 cores x 2 GHz x 2 FMA units x 2 FLOPs x 8 (AVX2) or 16 lanes.
    assert nominal_peak_gflops('avx2', 2, str(cpuinfo)) == 128
    assert nominal_peak_gflops('avx512', 2, str(cpuinfo)) == 256
    assert nominal_peak_gflops('other', 2, str(cpuinfo)) is None
    assert nominal_peak_gflops('avx2', 2, str(tmp_path / 'absent')) is None


def test_roofline_section_takes_the_best_probe(monkeypatch):
    from fasternet_mm.benchmark import backbone
    monkeypatch.setattr(backbone, 'conv_gflops', lambda: 150.0)
    monkeypatch.setattr(backbone, 'gemm_gflops', lambda *args: 120.0)
    report = {}
    backbone.roofline_section(report, 't0', bf16=False)
    roofline = report['roofline']
    assert roofline['gflops_per_s'] == dict(conv=150.0, gemm=120.0)
    assert roofline['best_gflops_per_s'] == 150.0
    with pytest.deprecated_call(match='use roofline_section'):
        backbone.gemm_section({}, 't0', bf16=False)


def test_conv_probe_rates_a_real_conv():
    from fasternet_mm.benchmark.timing import conv_gflops
    assert 0 < conv_gflops(shapes=((8, 16, 8), ), repeats=1) < math.inf
