"""Training checkpoints in the weights-only form: a plain torch.load reads
them on torch >= 2.6 with no allow-list, and the Runner gets MMEngine's
objects back."""
import pickle
from collections import Counter, OrderedDict

import numpy as np
import pytest
import torch
from helpers import Exploit, load_tool
from mmengine.logging import HistoryBuffer, MessageHub

from fasternet_mm.checkpoint import (TYPE_KEY, from_weights_only_form,
                                     read_checkpoint, to_weights_only_form)
from fasternet_mm.errors import CheckpointError
from fasternet_mm.hooks import AtomicCheckpointHook, current_random_states

LOSS = "checkpoint['message_hub']['log_scalars']['train/loss']"


def runner_checkpoint():
    """What Runner.save_checkpoint hands its hooks, with numpy values of
    several dtypes where MMEngine and datasets put them."""
    hub = MessageHub('runner_checkpoint')  # a fresh one at every call
    for loss, count in ((1.0, 1), (np.float64(0.5), 4), (np.float32(0.25), 2)):
        hub.update_scalar('train/loss', loss, count)
    hub.update_info('eta', np.float64(12.5))
    hub.update_info('keep_ckpt_ids', [1, 2])
    state = hub.state_dict()
    state['log_scalars']['train/iters'] = HistoryBuffer([3, 4], [1, 1], 5)
    return {
        'meta': {
            'epoch': 1,
            'iter': 7,
            'dataset_meta': {
                'classes': ('circle', 'square'),
                'palette': [(1, 2, 3), (4, 5, 6)]
            },
            'mean': np.array([[1.5, 2.5]], dtype=np.float32),
            'flags': np.array([True, False]),
            'step': np.int64(3),
            'scale': np.float32(0.1),
            'big_endian': np.arange(3, dtype='>i4'),
        },
        'state_dict': torch.nn.BatchNorm2d(2).state_dict(),
        'message_hub': state,
        'param_schedulers': [{
            'milestones': Counter({8: 1, 11: 1})
        }],
        'random_states': {
            'world_size': 1,
            'ranks': {
                0: current_random_states()
            }
        },
    }


def assert_same(actual, expected, where='checkpoint'):
    """Equal values of the same types, all the way down."""
    assert type(actual) is type(expected), where
    if isinstance(expected, HistoryBuffer):
        assert actual.max_length == expected.max_length, where
        for got, want in zip(actual.data, expected.data):
            assert_same(got, want, where)
    elif isinstance(expected, np.ndarray):
        assert actual.dtype == expected.dtype, where
        np.testing.assert_array_equal(actual, expected, err_msg=where)
    elif torch.is_tensor(expected):
        assert torch.equal(actual, expected), where
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), where
        for key in expected:
            assert_same(actual[key], expected[key], f'{where}[{key!r}]')
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for index, (got, want) in enumerate(zip(actual, expected)):
            assert_same(got, want, f'{where}[{index}]')
    else:
        assert actual == expected, where


def no_allow_list():
    return not any(
        item is HistoryBuffer or (isinstance(item, tuple) and HistoryBuffer
                                  in item)
        for item in torch.serialization.get_safe_globals())


def test_plain_torch_load_reads_the_form_and_gets_everything_back(tmp_path):
    checkpoint = runner_checkpoint()
    # Pickled, an empty array calls bytes(), which even the allow-list of
    # fasternet_mm.checkpoint.allowlist refuses.
    checkpoint['meta']['empty'] = np.zeros((0, 4), dtype=np.uint8)
    path = tmp_path / 'epoch_1.pth'
    torch.save(to_weights_only_form(checkpoint), path)
    assert no_allow_list()
    loaded = torch.load(path)
    saved_loss = loaded['message_hub']['log_scalars']['train/loss']
    assert saved_loss[TYPE_KEY] == 'mmengine.HistoryBuffer'
    assert saved_loss['count_history'].tolist() == [1, 4, 2]
    restored = from_weights_only_form(loaded)
    assert_same(restored, checkpoint)
    # A state dict keeps its version metadata (BatchNorm's loading uses it).
    assert restored['state_dict']._metadata == \
        checkpoint['state_dict']._metadata
    # MMEngine's message hub takes the buffers back (it skips anything else).
    hub = MessageHub('restored')
    hub.load_state_dict(restored['message_hub'])
    assert hub.get_scalar('train/loss').data[1].tolist() == [1, 4, 2]
    assert hub.get_info('eta') == 12.5


def test_conversion_is_idempotent_and_copies_nothing_it_need_not():
    checkpoint = runner_checkpoint()
    converted = to_weights_only_form(checkpoint)
    assert to_weights_only_form(converted) is converted
    # Weights and RandomStateHook's states are already plain: not copied.
    assert converted['state_dict'] is checkpoint['state_dict']
    assert converted['random_states'] is checkpoint['random_states']
    assert converted['param_schedulers'] is checkpoint['param_schedulers']
    restored = from_weights_only_form(converted)
    assert from_weights_only_form(restored) is restored
    assert from_weights_only_form(checkpoint) is checkpoint


def test_the_hook_converts_in_place_both_ways(tmp_path):
    hook = AtomicCheckpointHook(interval=1)
    checkpoint = runner_checkpoint()
    expected = runner_checkpoint()['message_hub']
    hook.before_save_checkpoint(None, checkpoint)
    path = tmp_path / 'epoch_1.pth'
    torch.save(checkpoint, path)
    loaded = torch.load(path)
    hook.after_load_checkpoint(None, loaded)
    assert_same(loaded['message_hub'], expected)


def damaged(saved):
    checkpoint = to_weights_only_form(runner_checkpoint())
    checkpoint['message_hub']['log_scalars']['train/loss'] = saved
    return checkpoint


BUFFER = dict(
    log_history=torch.tensor([1.0, 2.0], dtype=torch.float64),
    count_history=torch.tensor([1, 1]),
    max_length=10)


@pytest.mark.parametrize(
    'saved, message',
    [({
        TYPE_KEY: 'numpy.matrix',
        'data': torch.ones(1)
    }, "unknown form 'numpy.matrix'"),
     ({
         TYPE_KEY: 'mmengine.HistoryBuffer',
         'log_history': BUFFER['log_history'],
         'max_length': 10
     }, "needs the fields"),
     ({
         TYPE_KEY: 'mmengine.HistoryBuffer',
         **BUFFER, 'count_history': torch.tensor([1])
     }, 'of one length'),
     ({
         TYPE_KEY: 'mmengine.HistoryBuffer',
         **BUFFER, 'max_length': 1
     }, 'at most max_length=1'),
     ({
         TYPE_KEY: 'numpy.ndarray',
         'dtype': '<f8',
         'data': [1.0, 2.0]
     }, 'must be a tensor'),
     ({
         TYPE_KEY: 'numpy.ndarray',
         'dtype': '<f8',
         'data': torch.ones(2, dtype=torch.int32)
     }, 'torch.int32 tensor, not float64'),
     ({
         TYPE_KEY: 'numpy.scalar',
         'dtype': '<f8',
         'value': 'nan'
     }, "value 'nan'"),
     ({
         TYPE_KEY: 'numpy.scalar',
         'dtype': '|u1',
         'value': 300
     }, 'damaged saved numpy.scalar')])
def test_a_damaged_saved_object_is_named(saved, message):
    with pytest.raises(CheckpointError, match=message) as info:
        from_weights_only_form(damaged(saved))
    assert LOSS in str(info.value)


@pytest.mark.parametrize('value, message', [
    (object(), "\\['extra'\\] is a object"),
    ({np.int64(1): 'a'}, "\\['extra'\\] has a key of type numpy.int64"),
    ({np.int64(1)}, "\\['extra'\\] is a set holding a numpy.int64"),
    (np.array(['a']), "\\['extra'\\] is a numpy array of dtype <U1"),
    (np.str_('a'), "\\['extra'\\] is a numpy.str_"),
])
def test_an_object_without_a_weights_only_form_is_named(value, message):
    checkpoint = runner_checkpoint()
    checkpoint['meta']['extra'] = value
    with pytest.raises(TypeError, match="checkpoint\\['meta'\\]" + message):
        to_weights_only_form(checkpoint)


def test_convert_tool_makes_old_checkpoints_weights_only_safe(
        tmp_path, capsys):
    """MMEngine's checkpoints as its own CheckpointHook writes them, and
    mmdet 2's, are read through the safe loader and re-saved."""
    mmengine_file = tmp_path / 'mmengine.pth'
    torch.save(runner_checkpoint(), mmengine_file)
    mmdet2_file = tmp_path / 'mmdet2.pth'
    torch.save(
        {
            'meta': {
                'mmdet_version': '2.25.0',
                'CLASSES': ('circle', 'square'),
                'epoch': 12,
                'iter': 720,
                'hook_msgs': {
                    'last_ckpt': 'work_dirs/epoch_12.pth'
                }
            },
            'state_dict': OrderedDict(w=torch.ones(2)),
            'optimizer': {
                'state': {},
                'param_groups': [{
                    'lr': 0.1,
                    'params': [0]
                }]
            }
        }, mmdet2_file)
    with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):
        torch.load(mmengine_file)
    convert = load_tool('convert_checkpoint').main
    for src in (mmengine_file, mmdet2_file):
        dst = tmp_path / f'{src.stem}_safe.pth'
        convert([str(src), str(dst), '--weights-only-safe'])
        assert f'wrote {dst}' in capsys.readouterr().out
        assert no_allow_list()
        assert_same(from_weights_only_form(torch.load(dst)),
                    read_checkpoint(src))


def test_convert_tool_refuses_pickled_code_and_bad_flags(tmp_path, capsys):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': Exploit(marker)}, evil)
    convert = load_tool('convert_checkpoint').main
    with pytest.raises(SystemExit) as info:
        convert([str(evil), str(tmp_path / 'out.pth'), '--weights-only-safe'])
    assert info.value.code == 1
    assert 'Refused to load' in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / 'out.pth').exists()
    with pytest.raises(SystemExit) as info:
        convert([
            str(evil),
            str(tmp_path / 'out.pth'), '--weights-only-safe', '--prefix',
            'backbone.'
        ])
    assert info.value.code == 2
    assert 'give one of them' in capsys.readouterr().err
