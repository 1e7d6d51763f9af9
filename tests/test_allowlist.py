"""MMEngine checkpoints load under torch's weights-only default, inside
mmengine_checkpoints() only."""
import pickle
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

from fasternet_mm.checkpoint import read_checkpoint
from fasternet_mm.checkpoint.allowlist import (history_buffer_getattr,
                                               mmengine_checkpoints)


def runner_like_checkpoint():
    hub = MessageHub.get_instance('test_allowlist')
    for value in (1.0, np.float64(0.5), np.float32(0.25)):
        hub.update_scalar('train/loss', value)
    hub.update_info('iter', 7)
    return {
        'meta': {
            'epoch': 1,
            'iter': 7,
            'seed': 0,
            'dataset_meta': {
                'classes': ('a', 'b')
            }
        },
        'state_dict': {
            'w': torch.ones(2)
        },
        'message_hub': hub.state_dict(),
        'param_schedulers': [{
            'milestones': Counter({
                8: 1,
                11: 1
            })
        }],
        'numpy': np.arange(3, dtype=np.int64),
    }


def test_runner_checkpoint_loads_weights_only_inside_the_block(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    torch.save(runner_like_checkpoint(), path)
    with mmengine_checkpoints():
        # torch's default (weights_only=True on torch >= 2.6), explicit,
        # and MMEngine's loader, as --resume and load_from call it.
        for loaded in (torch.load(path), torch.load(path, weights_only=True),
                       _load_checkpoint(str(path))):
            buffer = loaded['message_hub']['log_scalars']['train/loss']
            assert isinstance(buffer, HistoryBuffer)
            assert buffer.mean() == pytest.approx((1.0 + 0.5 + 0.25) / 3)
            assert loaded['param_schedulers'][0]['milestones'] == Counter({
                8: 1,
                11: 1
            })
    # Outside the block torch's allow-list is as it was.
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(path, weights_only=True)
    assert read_checkpoint(path)['meta']['iter'] == 7  # our loader's block


def test_blocks_nest(tmp_path):
    """Our loader's block inside the tools' (a Pretrained backbone loads
    before --resume) must not end the outer one."""
    path = tmp_path / 'epoch_1.pth'
    torch.save(runner_like_checkpoint(), path)
    with mmengine_checkpoints():
        read_checkpoint(path)  # opens and closes an inner block
        assert torch.load(path, weights_only=True)['meta']['iter'] == 7
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(path, weights_only=True)


def test_import_leaves_torchs_allow_list_alone():
    # (torch.distributed.tensor, which MMEngine imports, adds its own.)
    script = ('import torch, fasternet_mm; '
              'from fasternet_mm.checkpoint.allowlist import '
              'mmengine_checkpoint_globals; '
              'allowed = torch.serialization.get_safe_globals(); '
              'ours = mmengine_checkpoint_globals(); '
              'print(sum(g in allowed for g in ours))')
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True,
                            text=True)
    assert result.stdout.split() == ['0'], result.stderr[-2000:]


def test_opt_out_keeps_the_block_inert(tmp_path, monkeypatch):
    path = tmp_path / 'epoch_1.pth'
    torch.save(runner_like_checkpoint(), path)
    monkeypatch.setenv('FASTERNET_MM_MMENGINE_ALLOWLIST', '0')
    with mmengine_checkpoints():
        with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
            torch.load(path, weights_only=True)


def test_getattr_stand_in_only_gives_statistics_methods():
    assert history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='__init__'):
        history_buffer_getattr(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError, match='system'):
        history_buffer_getattr(torch, 'system')


class _GetattrExploit:
    """Unpickles as getattr(HistoryBuffer, '__init__'), a step towards
    reaching arbitrary globals."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_gadget_is_refused(tmp_path):
    path = tmp_path / 'gadget.pth'
    torch.save({'x': _GetattrExploit()}, path)
    with mmengine_checkpoints(), pytest.raises(
            pickle.UnpicklingError, match='Refused getattr'):
        torch.load(path, weights_only=True)


def test_stack_versions_that_the_setup_pins():
    """mmengine imports pkg_resources (gone in setuptools 81); mmdet 3.3 and
    mmseg 1.2 refuse mmcv >= 2.2; Mask R-CNN needs mmcv's compiled ops."""
    from importlib.metadata import version

    import mmcv
    import pkg_resources  # noqa: F401  (what mmengine needs)
    from mmcv.ops import nms
    from mmengine.utils import digit_version

    assert digit_version(version('setuptools')) < digit_version('81')
    assert digit_version('2.0.0') <= digit_version(
        mmcv.__version__) < digit_version('2.2.0')
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
    assert keep.tolist() == [0]
