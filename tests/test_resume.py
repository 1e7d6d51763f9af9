"""Training killed with SIGKILL and resumed with --resume ends where an
uninterrupted run ends: same iterations, learning rate and weights."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from fasternet_mm.shapes import generate

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'
EPOCHS = 3


def train_command(data_root, work_dir, *extra):
    return [
        sys.executable,
        str(REPO / 'tools/train.py'),
        str(CONFIG), '--work-dir',
        str(work_dir), *extra, '--cfg-options', f'data_root={data_root}/',
        f'train_cfg.max_epochs={EPOCHS}',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=5', 'param_scheduler.0.end=4',
        'param_scheduler.1.milestones=[2]', 'randomness.deterministic=True',
        'train_dataloader.batch_size=2'
    ]


def wait_for(path, process, timeout=300):
    start = time.time()
    while not path.exists():
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.time() - start < timeout, f'{path} never appeared'
        time.sleep(0.2)


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    data_root = tmp_path / 'shapes'
    generate(str(data_root), num_train=8, num_val=2, size=128, seed=2)

    straight = tmp_path / 'straight'
    subprocess.run(
        train_command(data_root, straight), check=True, capture_output=True)

    resumed = tmp_path / 'resumed'
    process = subprocess.Popen(
        train_command(data_root, resumed),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True)
    # Kill it inside epoch 2, once epoch 1's checkpoint is complete.
    wait_for(resumed / 'epoch_1.pth', process)
    wait_for(resumed / 'last_checkpoint', process)
    time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (resumed / f'epoch_{EPOCHS}.pth').exists()
    result = subprocess.run(
        train_command(data_root, resumed, '--resume'),
        capture_output=True,
        text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'resumed epoch: ' in result.stdout + result.stderr

    a = torch.load(straight / f'epoch_{EPOCHS}.pth', weights_only=True)
    b = torch.load(resumed / f'epoch_{EPOCHS}.pth', weights_only=True)
    assert a['meta']['iter'] == b['meta']['iter'] == EPOCHS * 4
    assert a['meta']['epoch'] == b['meta']['epoch'] == EPOCHS
    lr = [group['lr'] for group in a['optimizer']['param_groups']]
    assert lr == [group['lr'] for group in b['optimizer']['param_groups']]
    assert a['param_schedulers'] == b['param_schedulers']
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(
            b['state_dict'][key], value, rtol=1e-5, atol=1e-6, msg=key)
