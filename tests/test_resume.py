"""Training killed with SIGKILL and resumed with --resume ends where an
uninterrupted run ends: same iterations, learning rate, weights and logged
history. Killed between checkpoints, and killed in the middle of writing
one."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from helpers import REPO

from fasternet_mm.checkpoint import from_weights_only_form, read_checkpoint

CONFIG = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'
EPOCHS = 3
# Exact resumption is checked on the CPU, also on a GPU machine: CUDA's
# deterministic mode refuses some of mmcv's kernels.
CPU_ONLY = dict(os.environ, CUDA_VISIBLE_DEVICES='')
# Run as `python -c`: tools/train.py whose file writer writes half of
# epoch 2's checkpoint and then kills its own process, as a SIGKILL in
# the middle of torch.save's write would.
DIE_INSIDE_WRITE = '''
import os, runpy, signal, sys
from mmengine.fileio import LocalBackend
put = LocalBackend.put
def put_half_then_die(self, obj, filepath):
    if 'epoch_2' in str(filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    put(self, obj, filepath)
LocalBackend.put = put_half_then_die
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def train_command(data_root, work_dir, *extra, keep=5):
    return [
        sys.executable,
        str(REPO / 'tools/train.py'),
        str(CONFIG), '--work-dir',
        str(work_dir), *extra, '--cfg-options', f'data_root={data_root}/',
        f'train_cfg.max_epochs={EPOCHS}',
        'default_hooks.checkpoint.interval=1',
        f'default_hooks.checkpoint.max_keep_ckpts={keep}',
        'param_scheduler.0.end=4', 'param_scheduler.1.milestones=[2]',
        'randomness.deterministic=True', 'train_dataloader.batch_size=2'
    ]


def wait_for(path, process, timeout=300):
    start = time.time()
    while not path.exists():
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.time() - start < timeout, f'{path} never appeared'
        time.sleep(0.2)


@pytest.fixture(scope='module')
def data_root(make_shapes):
    return make_shapes(num_train=8, num_val=2, size=128, seed=2)


@pytest.fixture(scope='module')
def straight(data_root, tmp_path_factory):
    """The final checkpoint of an uninterrupted run."""
    work_dir = tmp_path_factory.mktemp('straight')
    subprocess.run(
        train_command(data_root, work_dir),
        check=True,
        capture_output=True,
        env=CPU_ONLY)
    return work_dir / f'epoch_{EPOCHS}.pth'


def resume_and_compare(data_root, work_dir, straight, keep=5):
    result = subprocess.run(
        train_command(data_root, work_dir, '--resume', keep=keep),
        capture_output=True,
        text=True,
        env=CPU_ONLY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'resumed epoch: ' in result.stdout + result.stderr

    a = read_checkpoint(straight)
    b = read_checkpoint(work_dir / f'epoch_{EPOCHS}.pth')
    assert a['meta']['iter'] == b['meta']['iter'] == EPOCHS * 4
    assert a['meta']['epoch'] == b['meta']['epoch'] == EPOCHS
    lr = [group['lr'] for group in a['optimizer']['param_groups']]
    assert lr == [group['lr'] for group in b['optimizer']['param_groups']]
    assert a['param_schedulers'] == b['param_schedulers']
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(
            b['state_dict'][key], value, rtol=1e-5, atol=1e-6, msg=key)
    # The message hub came back from the checkpoint's weights-only form:
    # the resumed run's history holds the iterations before the kill too.
    scalars_a = from_weights_only_form(a['message_hub'])['log_scalars']
    scalars_b = from_weights_only_form(b['message_hub'])['log_scalars']
    assert scalars_a.keys() == scalars_b.keys()
    for key, buffer in scalars_a.items():
        (log_a, count_a), (log_b, count_b) = buffer.data, scalars_b[key].data
        assert len(log_a) == EPOCHS * 4, key
        np.testing.assert_array_equal(count_b, count_a, err_msg=key)
        if not key.endswith('time'):  # time and data_time differ
            np.testing.assert_allclose(log_b, log_a, rtol=1e-4, err_msg=key)


def test_sigkill_then_resume_matches_uninterrupted(data_root, straight,
                                                   tmp_path):
    resumed = tmp_path / 'resumed'
    process = subprocess.Popen(
        train_command(data_root, resumed),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=CPU_ONLY)
    # Kill it inside epoch 2, once epoch 1's checkpoint is complete.
    wait_for(resumed / 'epoch_1.pth', process)
    wait_for(resumed / 'last_checkpoint', process)
    time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (resumed / f'epoch_{EPOCHS}.pth').exists()
    resume_and_compare(data_root, resumed, straight)


def test_sigkill_inside_a_checkpoint_write_loses_nothing(
        data_root, straight, tmp_path):
    """With max_keep_ckpts=1, MMEngine's own CheckpointHook deletes
    epoch 1's checkpoint before writing epoch 2's in place: killed inside
    that write, the run is left with half a file and a last_checkpoint
    naming a deleted one."""
    resumed = tmp_path / 'resumed'
    command = train_command(data_root, resumed, keep=1)
    killed = subprocess.run(
        [sys.executable, '-c', DIE_INSIDE_WRITE, *command[1:]],
        capture_output=True,
        text=True,
        env=CPU_ONLY)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (resumed / 'epoch_2.pth').exists()
    assert (resumed / 'epoch_1.pth').exists()
    assert (resumed / 'last_checkpoint').read_text().endswith('epoch_1.pth')
    resume_and_compare(data_root, resumed, straight, keep=1)
