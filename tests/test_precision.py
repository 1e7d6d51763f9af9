"""Mixed precision (amp) by parts: use_amp runs chosen parts of a model
in bf16 and hands fp32 on, keeps the predictor layers in fp32, and
use_fp32 undoes it; on a CPU without native bf16 it refuses bf16 unless
told that emulated bf16 will do (these numerics tests say so)."""
import os
import subprocess
import sys

import pytest
import torch
from helpers import REPO, build, forward_once, load_tool
from mmengine.config import Config
from torch import nn

from fasternet_mm import precision, use_amp, use_fp32, use_low_precision
from fasternet_mm.errors import PreflightError
from fasternet_mm.precision import amp_parts, predictor_layers

MASK_RCNN = 'configs/mask_rcnn_fasternet_t0.py'


def small_mask_rcnn():
    cfg = Config.fromfile(MASK_RCNN)
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # random weights: keep boxes
    return build(cfg)


def test_use_amp_again_replaces_the_earlier_parts():
    model = nn.ModuleDict(
        dict(
            backbone=nn.Sequential(nn.Linear(4, 4)),
            neck=nn.Sequential(nn.Linear(4, 4))))
    dtypes = {}
    for name in ('backbone', 'neck'):
        model[name][0].register_forward_hook(
            lambda module, args, output, name=name: dtypes.__setitem__(
                name, output.dtype))
    x = torch.rand(2, 4)
    use_amp(model, ['backbone', 'neck'], allow_emulated=True)
    model['neck'](model['backbone'](x))
    assert dtypes == dict(backbone=torch.bfloat16, neck=torch.bfloat16)
    use_amp(model, ['backbone'], allow_emulated=True)
    model['neck'](model['backbone'](x))
    assert dtypes == dict(backbone=torch.bfloat16, neck=torch.float32)
    assert not model['neck']._forward_pre_hooks
    assert len(model['backbone']._forward_pre_hooks) == 1


def test_amp_parts_of_detectors_and_segmentors():
    assert amp_parts(small_mask_rcnn()) == [
        'backbone', 'neck', 'rpn_head', 'roi_head.bbox_head',
        'roi_head.mask_head'
    ]
    cfg = Config.fromfile('configs/cascade_mask_rcnn_fasternet_s_fpn_ms_3x_'
                          'coco.py')
    cfg.model.backbone.arch = 't0'
    cfg.model.neck.in_channels = [40, 80, 160, 320]
    parts = amp_parts(build(cfg))
    assert parts[:3] == ['backbone', 'neck', 'rpn_head']
    assert [p for p in parts if 'bbox_head' in p
            ] == [f'roi_head.bbox_head.{i}' for i in range(3)]
    cfg = Config.fromfile('configs/upernet_fasternet_s_ade20k.py')
    assert amp_parts(
        build(cfg)) == ['backbone', 'decode_head', 'auxiliary_head']


def test_use_amp_runs_parts_in_bf16_and_hands_on_fp32():
    model = small_mask_rcnn()
    seen, features = {}, []

    def record(name):

        def hook(module, args, output):
            seen.setdefault(name, output.dtype)

        return hook

    model.neck.fpn_convs[0].conv.register_forward_hook(record('neck'))
    model.roi_head.bbox_head.shared_fcs[0].register_forward_hook(
        record('head'))
    model.roi_head.bbox_head.fc_reg.register_forward_hook(record('reg'))
    # The FPN's five levels, as the neck computes them.
    model.neck.register_forward_hook(
        lambda module, args, output: features.append(output))
    torch.manual_seed(0)
    expected = forward_once(model, 'mmdet')[0].pred_instances
    use_amp(model, allow_emulated=True)
    seen.clear()
    torch.manual_seed(0)
    result = forward_once(model, 'mmdet')[0].pred_instances
    # The predictors (here fc_reg) stay fp32.
    assert seen == dict(
        neck=torch.bfloat16, head=torch.bfloat16, reg=torch.float32)
    assert result.bboxes.dtype == torch.float32
    assert len(result) == len(expected) == 100
    # bf16 keeps 8 bits of mantissa: through T0 and the FPN the features
    # stay within 3% of the largest fp32 value (measured: 0.8-1.0%).
    fp32, bf16 = features
    for level, (a, b) in enumerate(zip(bf16, fp32)):
        assert a.dtype == torch.bfloat16
        a = a.float()
        error = ((a - b).abs().max() / b.abs().max()).item()
        assert error < 3e-2, (level, error)
    use_fp32(model)
    seen.clear()
    forward_once(model, 'mmdet')
    assert set(seen.values()) == {torch.float32}


def test_predictor_layers_of_detectors_and_segmentors():
    model = small_mask_rcnn()
    assert predictor_layers(model, amp_parts(model)) == [
        'rpn_head.rpn_cls', 'rpn_head.rpn_reg', 'roi_head.bbox_head.fc_cls',
        'roi_head.bbox_head.fc_reg', 'roi_head.mask_head.conv_logits'
    ]
    cfg = Config.fromfile('configs/upernet_fasternet_s_ade20k.py')
    model = build(cfg)
    assert predictor_layers(model, amp_parts(model)) == [
        'decode_head.conv_seg', 'auxiliary_head.conv_seg'
    ]


def test_autocast_ends_when_a_part_raises():
    model = torch.nn.ModuleDict(dict(backbone=torch.nn.Linear(4, 4)))
    use_amp(model, allow_emulated=True)
    with pytest.raises(RuntimeError):
        model.backbone(torch.rand(3, 5))
    assert not torch.is_autocast_enabled('cpu')
    assert model.backbone(torch.rand(3, 4)).dtype == torch.float32


@pytest.mark.parametrize('kwargs, pattern',
                         [(dict(parts=['backbone', 'nek']), r"\['nek'\]"),
                          (dict(dtype=torch.float64), 'torch.float64')])
def test_use_amp_names_bad_arguments(kwargs, pattern):
    model = torch.nn.ModuleDict(dict(backbone=torch.nn.Linear(4, 4)))
    with pytest.raises(ValueError, match=pattern):
        use_amp(model, allow_emulated=True, **kwargs)


def test_use_fp32_removes_every_hook():
    model = torch.nn.ModuleDict(dict(fc_cls=torch.nn.Linear(4, 4)))
    use_amp(model, parts=['fc_cls'], fp32_layers=['fc_cls'],
            allow_emulated=True)
    assert len(model.fc_cls._forward_hooks) == 2
    use_fp32(model)
    assert not model.fc_cls._forward_hooks
    assert not model.fc_cls._forward_pre_hooks


REFUSAL = (r'bf16 refused: this CPU has no native bf16 \(AVX512-BF16 or '
           r'AMX\), and emulated bf16 runs about 10x slower than fp32; run '
           r'in fp32, or, to test bf16 numerics, pass allow_emulated=True')


def backbone_only():
    return nn.ModuleDict(dict(backbone=nn.Sequential(nn.Linear(4, 4))))


def without_native_bf16(monkeypatch):
    monkeypatch.delenv(precision.ALLOW_EMULATED_BF16, raising=False)
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported',
                        lambda: False)


def test_bf16_on_a_cpu_without_native_bf16_is_refused(monkeypatch):
    without_native_bf16(monkeypatch)
    model = backbone_only()
    with pytest.raises(PreflightError, match=REFUSAL) as info:
        use_amp(model)
    assert '\n' not in str(info.value)
    assert not model.backbone._forward_pre_hooks
    # fp16 is not refused here: the refusal is about bf16 alone.
    use_amp(model, dtype=torch.float16)


@pytest.mark.skipif(
    torch.ops.mkldnn._is_mkldnn_bf16_supported(),
    reason='this CPU has native bf16')
def test_bf16_on_this_cpu_is_refused(monkeypatch):
    monkeypatch.delenv(precision.ALLOW_EMULATED_BF16, raising=False)
    with pytest.raises(PreflightError, match=REFUSAL):
        use_amp(backbone_only())


def test_bf16_is_refused_when_onednn_is_capped_below_bf16():
    """Whatever the CPU: under ONEDNN_MAX_CPU_ISA=AVX2 oneDNN emulates
    bf16, and use_amp refuses it."""
    code = ('import torch\n'
            'from fasternet_mm import use_amp\n'
            'from fasternet_mm.errors import PreflightError\n'
            'model = torch.nn.ModuleDict(\n'
            '    dict(backbone=torch.nn.Linear(4, 4)))\n'
            'try:\n'
            '    use_amp(model)\n'
            'except PreflightError as err:\n'
            '    print(err)\n')
    env = {
        k: v
        for k, v in os.environ.items()
        if k != precision.ALLOW_EMULATED_BF16
    }
    env.update(ONEDNN_MAX_CPU_ISA='AVX2', PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True,
                            text=True,
                            env=env,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith('bf16 refused: this CPU has no native '
                                    'bf16'), result.stdout


def test_emulated_bf16_when_asked_for(monkeypatch):
    without_native_bf16(monkeypatch)
    model = backbone_only()
    assert use_amp(model, allow_emulated=True) == ['backbone']
    assert model.backbone(torch.rand(2, 4)).dtype == torch.float32
    use_fp32(model)
    monkeypatch.setenv(precision.ALLOW_EMULATED_BF16, '1')
    assert use_amp(model) == ['backbone']


def test_bf16_on_a_cpu_with_native_bf16_needs_no_override(monkeypatch):
    monkeypatch.delenv(precision.ALLOW_EMULATED_BF16, raising=False)
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported',
                        lambda: True)
    assert precision.native_bf16('cpu')
    model = backbone_only()
    dtypes = []
    model.backbone[0].register_forward_hook(
        lambda module, args, output: dtypes.append(output.dtype))
    assert use_amp(model) == ['backbone']
    model.backbone(torch.rand(2, 4))
    assert dtypes == [torch.bfloat16]


def test_test_tool_amp_refuses_emulated_bf16_in_one_line(monkeypatch,
                                                         capsys):
    without_native_bf16(monkeypatch)
    tool = load_tool('test')
    with pytest.raises(SystemExit) as info:
        # Refused before the (absent) checkpoint is looked at.
        tool.main(['configs/mask_rcnn_fasternet_t0.py', 'absent.pth',
                   '--amp'])
    err = capsys.readouterr().err
    assert info.value.code == 1, err
    assert len(err.strip().splitlines()) == 1
    assert 'bf16 refused: this CPU has no native bf16' in err


def test_old_names_of_use_amp_and_amp_parts_still_work_and_warn():
    model = backbone_only()
    with pytest.deprecated_call(
            match='use_low_precision is deprecated; use use_amp'):
        assert use_low_precision(
            model, allow_emulated=True) == ['backbone']
    assert len(model.backbone._forward_hooks) == 1
    use_fp32(model)
    with pytest.deprecated_call(
            match='low_precision_parts is deprecated; use amp_parts'):
        assert precision.low_precision_parts(model) == amp_parts(model)
