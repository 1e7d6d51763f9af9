"""tools/train.py --amp: bf16 autocast by parts on a CPU, MMEngine's fp16
AmpOptimWrapper where it runs, one clear line elsewhere; tools/test.py
--amp, bf16 autocast by parts."""
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from helpers import REPO, load_tool
from mmengine.config import Config
from mmengine.logging import MMLogger

from fasternet_mm import precision
from fasternet_mm.errors import PreflightError
from fasternet_mm.hooks import AmpTrainingHook

DET_DEMO = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'


@pytest.mark.skipif(
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
    reason='this CPU has no native bf16')
def test_amp_trains_on_a_cpu_in_bf16_by_parts(tmp_path, make_shapes):
    data_root = make_shapes(num_train=4, num_val=1, size=128, seed=4)
    work_dir = tmp_path / 'amp'
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / 'tools/train.py'),
            str(DET_DEMO), '--amp', '--work-dir',
            str(work_dir), '--cfg-options', f'data_root={data_root}/',
            'train_cfg.max_epochs=1', 'default_hooks.checkpoint.interval=1',
            'train_dataloader.batch_size=2'
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert ("--amp: training ['backbone', 'neck', 'rpn_head', "
            "'roi_head.bbox_head', 'roi_head.mask_head'] under bf16") in log
    state = torch.load(work_dir / 'epoch_1.pth', weights_only=False)
    # Master weights stay fp32; the hooks leave no trace in the keys.
    assert {v.dtype for v in state['state_dict'].values()
            if v.is_floating_point()} == {torch.float32}
    assert all(torch.isfinite(v).all() for v in state['state_dict'].values()
               if v.is_floating_point())


@pytest.mark.parametrize('device, optim_wrapper, hooks', [
    ('cuda', 'AmpOptimWrapper', []),
    ('npu', 'AmpOptimWrapper', []),
    ('cpu', 'OptimWrapper', ['fasternet_mm.AmpTrainingHook']),
])
def test_amp_picks_the_device_s_mixed_precision(monkeypatch, device,
                                                optim_wrapper, hooks):
    monkeypatch.setattr(precision, 'get_device', lambda: device)
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported',
                        lambda: True)
    cfg = Config.fromfile(DET_DEMO)
    precision.configure_amp(cfg)
    assert cfg.optim_wrapper.type == optim_wrapper
    assert [h['type'] for h in cfg.get('custom_hooks', [])] == hooks


@pytest.mark.parametrize('device, bf16, pattern', [
    ('cpu', False, 'this CPU has no native bf16'),
    ('mps', True, "no mixed precision on 'mps'"),
])
def test_amp_where_the_device_cannot_is_one_line(monkeypatch, capsys, device,
                                                 bf16, pattern):
    tool = load_tool('train')
    monkeypatch.setattr(precision, 'get_device', lambda: device)
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported',
                        lambda: bf16)
    with pytest.raises(PreflightError, match=pattern):
        precision.configure_amp(Config.fromfile(DET_DEMO))
    with pytest.raises(SystemExit) as info:
        tool.main([str(DET_DEMO), '--amp'])
    err = capsys.readouterr().err
    assert info.value.code == 1 and pattern in err
    assert len(err.strip().splitlines()) == 1


def test_bf16_training_hook_validates_in_fp32(monkeypatch):
    """Training runs under bf16 autocast; validation inside it in fp32,
    with no precision hook left; training then goes back to bf16."""
    # The hook runs where configure_amp found native bf16.
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported',
                        lambda: True)
    model = torch.nn.ModuleDict(
        dict(backbone=torch.nn.Sequential(torch.nn.Linear(4, 4))))
    dtypes = []
    model.backbone[0].register_forward_hook(
        lambda module, args, output: dtypes.append(output.dtype))
    runner = SimpleNamespace(
        model=model, logger=MMLogger.get_current_instance())
    hook = AmpTrainingHook()
    x = torch.rand(2, 4)
    hook.before_train(runner)
    model.backbone(x)
    hook.before_val(runner)
    assert not any(m._forward_pre_hooks for m in model.modules())
    assert [len(m._forward_hooks) for m in model.backbone.modules()] == [0, 1]
    model.backbone(x)
    hook.after_val(runner)
    model.backbone(x)
    hook.after_train(runner)
    model.backbone(x)
    assert dtypes == [
        torch.bfloat16, torch.float32, torch.bfloat16, torch.float32
    ]


def test_test_tool_takes_amp_and_its_old_name_bf16():
    tool = load_tool('test')
    args = tool.parse_args([str(DET_DEMO), 'model.pth', '--amp'])
    assert args.amp == 'all'
    assert tool.parse_args([str(DET_DEMO), 'model.pth']).amp is None
    with pytest.warns(FutureWarning, match='--bf16 is deprecated; use --amp'):
        args = tool.parse_args([str(DET_DEMO), 'model.pth', '--bf16',
                                'backbone'])
    assert args.amp == 'backbone'
