"""Multi-process training on CPU: torchrun + gloo, with and without SyncBN,
and the checkpoint it writes evaluated by tools/test.py."""
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import REPO

from fasternet_mm.checkpoint import read_checkpoint
from fasternet_mm.distributed import AllReduceBatchNorm, convert_sync_batchnorm

CONFIG = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _sync_bn_worker(rank, world_size, port, inputs, results):
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world_size)
    torch.manual_seed(0)
    bn = convert_sync_batchnorm(torch.nn.SyncBatchNorm(3)).train()
    x = inputs[rank].clone().requires_grad_()
    out = bn(x)
    (out * torch.arange(out.numel()).view_as(out)).sum().backward()
    results[rank] = (out.detach(), x.grad, bn.weight.grad, bn.running_mean,
                     bn.running_var)
    dist.destroy_process_group()


def test_all_reduce_batchnorm_equals_batchnorm_on_the_whole_batch():
    # per rank: N=2, C=3. A mean far from zero against a unit spread: a
    # one-pass E[x^2] - E[x]^2 loses the variance to float32 cancellation.
    inputs = 1000 + torch.randn(
        2, 2, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_sync_bn_worker, args=(2, free_port(), inputs, results), nprocs=2)
    # The truth in float64. Inputs near 1000 are float32 numbers 6e-5 apart,
    # which bounds how close any float32 result can come: outputs and
    # statistics to 1e-4 of their largest value, gradients (sums of many
    # such terms; torch's own float32 BatchNorm2d is 4e-4 off here) to 1e-3.
    # The one-pass variance was 7e-2 off.
    reference = torch.nn.BatchNorm2d(3).double().train()
    x = inputs.reshape(4, 3, 5, 4).double().requires_grad_()
    out = reference(x)
    weights = torch.cat([torch.arange(out.numel() // 2)] * 2).view_as(out)
    (out * weights).sum().backward()

    def close(ours, truth, tolerance=1e-4):
        truth = truth.detach()
        torch.testing.assert_close(
            ours.double(),
            truth,
            rtol=0,
            atol=tolerance * truth.abs().max().item())

    close(torch.cat([results[0][0], results[1][0]]), out)
    close(torch.cat([results[0][1], results[1][1]]), x.grad, 1e-3)
    # DDP sums nothing here: each rank holds its share of the weight grad.
    close(results[0][2] + results[1][2], reference.weight.grad, 1e-3)
    for rank in (0, 1):
        close(results[rank][3], reference.running_mean)
        close(results[rank][4], reference.running_var)


def test_convert_keeps_parameters():
    bn = torch.nn.SyncBatchNorm(4)
    bn.weight.data.fill_(2.0)
    bn.running_mean.fill_(0.5)
    converted = convert_sync_batchnorm(torch.nn.Sequential(bn))[0]
    assert isinstance(converted, AllReduceBatchNorm)
    assert torch.equal(converted.weight, bn.weight)
    assert torch.equal(converted.running_mean, bn.running_mean)


# A hook for the 2-process runs: each rank writes its torch RNG state when
# training starts (after any resume) and its weights when training ends.
PROBE = """
from pathlib import Path

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankProbeHook(Hook):
    priority = 'LOWEST'  # after RandomStateHook restores the states

    def before_train(self, runner):
        torch.save(torch.get_rng_state(),
                   Path(runner.work_dir) / f'rng_rank{get_rank()}.pth')

    def after_train(self, runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        torch.save(model.state_dict(),
                   Path(runner.work_dir) / f'weights_rank{get_rank()}.pth')
"""
BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked')


def dist_train(config, work_dir, options, cwd, env, *extra):
    return subprocess.run([
        'bash',
        str(REPO / 'tools/dist_train.sh'),
        str(config), '2', '--work-dir',
        str(work_dir), *extra, *options
    ],
                          capture_output=True,
                          text=True,
                          env=dict(env, PORT=str(free_port())),
                          cwd=cwd)


@pytest.mark.parametrize('norm', ['BN', 'SyncBN'])
def test_dist_train_two_cpu_processes_then_test(tmp_path, make_shapes,
                                                norm):
    data_root = make_shapes(num_train=8, num_val=2, size=128, seed=3)
    (tmp_path / 'rank_probe.py').write_text(PROBE)
    config = tmp_path / 'probed.py'
    config.write_text(
        f'_base_ = {str(CONFIG)!r}\n'
        "custom_imports = dict(imports=['fasternet_mm', 'rank_probe'])\n"
        "custom_hooks = [dict(type='RankProbeHook')]\n"
        'randomness = dict(seed=0, diff_rank_seed=True)\n')
    # PYTHON_BIN: torchrun from this interpreter, whichever venv it is in.
    env = dict(
        os.environ,
        PYTHON_BIN=sys.executable,
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(tmp_path),
                          os.environ.get('PYTHONPATH')])))
    work_dir = tmp_path / 'work'
    options = [
        '--cfg-options', f'data_root={data_root}/', 'train_cfg.max_epochs=2',
        'default_hooks.checkpoint.interval=2', 'param_scheduler.1.end=2',
        f'model.backbone.norm_cfg.type={norm}'
    ]
    result = dist_train(config, work_dir, options, tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert ('layers all-reduce their statistics over gloo' in log) == (
        norm == 'SyncBN')
    checkpoint = work_dir / 'epoch_2.pth'
    saved = read_checkpoint(checkpoint)

    # The ranks stayed in sync: rank 1 ends with the weights that rank 0
    # wrote. BN buffers are not broadcast (broadcast_buffers=False), so
    # with plain BN each rank keeps its own statistics; AllReduceBatchNorm
    # computes the same ones on both.
    rank1 = torch.load(work_dir / 'weights_rank1.pth', weights_only=True)
    assert rank1.keys() == saved['state_dict'].keys()
    compared = [
        key for key in rank1 if norm == 'SyncBN' or not key.endswith(BUFFERS)
    ]
    assert len(compared) > 100
    for key in compared:
        assert torch.equal(rank1[key], saved['state_dict'][key]), key

    # Each rank's random states, seeded apart, are in the checkpoint.
    states = saved['random_states']
    assert states['world_size'] == 2 and sorted(states['ranks']) == [0, 1]
    assert not torch.equal(states['ranks'][0]['torch'],
                           states['ranks'][1]['torch'])
    if norm == 'BN':
        # A 2-process --resume gives each rank its own states back.
        result = dist_train(config, work_dir, options, tmp_path, env,
                            '--resume')
        assert result.returncode == 0, result.stderr[-3000:]
        for rank in (0, 1):
            restored = torch.load(
                work_dir / f'rng_rank{rank}.pth', weights_only=True)
            assert torch.equal(restored, states['ranks'][rank]['torch']), rank

    result = subprocess.run([
        sys.executable,
        str(REPO / 'tools/test.py'),
        str(CONFIG),
        str(checkpoint), '--work-dir',
        str(tmp_path / 'test'), *options[:2]
    ],
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'coco/bbox_mAP' in result.stdout + result.stderr
