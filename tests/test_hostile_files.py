"""Checkpoints crafted to hurt: deep nesting, decompression bombs, damaged
saved objects and random states, pickles that run code, broken downloads.
Each ends in one CheckpointError line that names the file, in bounded time
and memory, or loads exactly. The fuzzing is seeded, so a failure
reproduces."""
import http.server
import pickle
import random
import resource
import struct
import threading
import time
import tracemalloc
import warnings
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import REPO, Exploit, load_tool
from mmengine.logging import HistoryBuffer

from fasternet_mm.checkpoint import (MAX_DEPTH, TYPE_KEY,
                                     from_weights_only_form, read_checkpoint,
                                     restore_checkpoint, to_weights_only_form)
from fasternet_mm.errors import CheckpointError
from fasternet_mm.hooks import (AtomicCheckpointHook, RandomStateHook,
                                current_random_states)

DET_DEMO = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'
# What none of our messages may carry: torch's advice to load with
# weights_only=False, and its multi-line layout.
TORCH_ADVICE = ('Re-running', 'False', 'weights_only`', 'trusted source')


def one_line(message, path=None):
    assert '\n' not in message, message
    assert not any(advice in message for advice in TORCH_ADVICE), message
    if path is not None:
        assert str(path) in message, message
    return message


def refused(path, match=None, restore=False):
    """The one-line CheckpointError of reading ``path`` (and restoring it as
    the tools' preflight does)."""
    with pytest.raises(CheckpointError, match=match) as info:
        content = read_checkpoint(path)
        if restore:
            restore_checkpoint(content, str(path))
    return one_line(str(info.value), path)


def nested(depth, key='k', leaf=None):
    value = leaf if leaf is not None else torch.zeros(1)
    for _ in range(depth):
        value = {key: value}
    return value


def rewrite_zip(src, dst, replace=None, extra=()):
    """``src`` re-written record by record to ``dst``, as torch wrote them,
    with ``replace`` (suffix -> bytes) swapped in and ``extra`` (name,
    bytes, method) records added."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, 'w') as new:
        folder = old.infolist()[0].filename.split('/')[0]
        for info in old.infolist():
            data = old.read(info)
            for suffix, other in (replace or {}).items():
                if info.filename.endswith(suffix):
                    data = other
            new.writestr(info, data)
        for name, data, method in extra:
            new.writestr(f'{folder}/{name}', data, compress_type=method)
    return dst


def claim_size(path, name_suffix, size):
    """Make the zip headers of ``path`` claim that the record ending in
    ``name_suffix`` uncompresses to ``size`` bytes."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist()
                    if i.filename.endswith(name_suffix))
    struct.pack_into('<I', data, info.header_offset + 22, size)
    position = data.find(b'PK\x01\x02')  # the central directory's entries
    while position >= 0:
        name_len = struct.unpack_from('<H', data, position + 28)[0]
        if data[position + 46:position + 46 + name_len] == \
                info.filename.encode():
            struct.pack_into('<I', data, position + 24, size)
        position = data.find(b'PK\x01\x02', position + 4)
    path.write_bytes(bytes(data))


@pytest.fixture(scope='module')
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp('good') / 'epoch_1.pth'
    torch.save({'meta': dict(epoch=1, iter=2), 'state_dict': {}}, path)
    return path


# Nesting -------------------------------------------------------------------


def test_long_keys_nested_to_the_limit_cost_no_memory_per_level():
    """Labels are built only for an error: walking 64 levels under 16 KiB
    keys allocates nothing per level (a label grown at each level would
    hold 16 KiB x 64^2 / 2 = 32 MiB)."""
    checkpoint = {'meta': nested(MAX_DEPTH - 1, key='x' * 16384)}
    tracemalloc.start()
    for convert in (to_weights_only_form, from_weights_only_form):
        assert convert(checkpoint) is checkpoint
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20, peak


@pytest.mark.parametrize('depth', [MAX_DEPTH + 1, 450, 5000, 100_000])
def test_nesting_beyond_the_limit_is_refused_in_one_line(depth):
    checkpoint = {'meta': nested(depth - 1, key='x' * 16384)}
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=f'more than {MAX_DEPTH} deep'
                       ) as info:
        from_weights_only_form(checkpoint)
    with pytest.raises(ValueError, match=f'more than {MAX_DEPTH} deep'):
        to_weights_only_form(checkpoint)
    assert time.perf_counter() - start < 1
    assert len(one_line(str(info.value))) < 1000  # keys and levels cut


def test_a_crafted_deep_file_is_refused_by_the_preflight(tmp_path):
    """The reviewer's 19 KB file: 450 dicts under one 16 KiB key."""
    path = tmp_path / 'deep.pth'
    torch.save({'meta': nested(450, key='k' * 16384)}, path)
    assert path.stat().st_size < 40_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    message = refused(path, 'more than 64 deep', restore=True)
    assert time.perf_counter() - start < 1
    assert resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB
    assert message.startswith(f'Cannot restore the checkpoint {path}')


# Zip records ---------------------------------------------------------------


def test_a_bzip2_bomb_is_refused_before_decompression(good, tmp_path):
    """100 MB of zeros in a 400-byte bzip2 record that torch.load would
    never read: refused from the zip directory, before any decompression."""
    path = rewrite_zip(good, tmp_path / 'bomb.pth')
    with zipfile.ZipFile(path, 'a') as archive:
        info = zipfile.ZipInfo('epoch_1/bomb')
        info.compress_type = zipfile.ZIP_BZIP2
        with archive.open(info, 'w') as record:
            for _ in range(100):
                record.write(bytes(1 << 20))
    assert path.stat().st_size < 4000
    start = time.perf_counter()
    message = refused(path, "record 'bomb' is bzip2-compressed")
    assert time.perf_counter() - start < 0.5
    assert 'torch.load reads nothing else' in message


def test_a_deflated_record_claiming_more_than_deflate_gives_is_refused(
        good, tmp_path):
    path = rewrite_zip(
        good,
        tmp_path / 'ratio.pth',
        extra=[('extra', bytes(100_000), zipfile.ZIP_DEFLATED)])
    assert read_checkpoint(path)['meta']['epoch'] == 1  # 100 KB of zeros
    claim_size(path, 'extra', 1 << 30)
    start = time.perf_counter()
    refused(path, "record 'extra' claims 1073741824 bytes from .* deflated, "
            'more than deflate.s limit of 1032 to 1')
    assert time.perf_counter() - start < 0.5


def test_a_stored_record_claiming_another_size_is_refused(good, tmp_path):
    path = rewrite_zip(good, tmp_path / 'stored.pth')
    claim_size(path, 'data.pkl', 1 << 31)
    refused(path, "record 'data.pkl' is stored uncompressed but claims")


# Saved objects -------------------------------------------------------------


def saved_array(data, dtype='<f4'):
    return {TYPE_KEY: 'numpy.ndarray', 'dtype': dtype, 'data': data}


@pytest.mark.parametrize('data', [
    torch.ones(3, requires_grad=True),
    torch.nn.Parameter(torch.ones(3)),
])
def test_tensors_that_require_grad_restore_as_arrays(tmp_path, data):
    path = tmp_path / 'grad.pth'
    torch.save({'meta': {'mean': saved_array(data)}}, path)
    restored = restore_checkpoint(read_checkpoint(path), str(path))
    mean = restored['meta']['mean']
    assert type(mean) is np.ndarray and mean.tolist() == [1.0, 1.0, 1.0]


def test_a_saved_object_as_the_whole_checkpoint_is_refused(tmp_path):
    path = tmp_path / 'whole.pth'
    torch.save(saved_array(torch.ones(2)), path)
    message = refused(path, 'holds a numpy.ndarray', restore=True)
    with pytest.raises(CheckpointError) as info:
        AtomicCheckpointHook(interval=1).after_load_checkpoint(
            SimpleNamespace(_load_from=str(path)), torch.load(path))
    assert str(path) in one_line(str(info.value))
    assert 'a checkpoint holds a dict' in message


def test_the_hook_drops_a_config_that_resume_would_run(tmp_path):
    """Runner.resume runs meta['config'] as a Python config file (to count
    GPUs); MMEngine writes meta['cfg'], which it never runs."""
    from mmengine.config import Config
    marker = tmp_path / 'ran'
    code = f"x = __import__('pathlib').Path({str(marker)!r}).touch()"
    checkpoint = {'meta': {'config': code, 'cfg': 'x = 1', 'epoch': 1}}
    AtomicCheckpointHook(interval=1).after_load_checkpoint(None, checkpoint)
    assert checkpoint['meta'] == {'cfg': 'x = 1', 'epoch': 1}
    Config.fromstring(code, file_format='.py')
    assert marker.exists()  # what the hook keeps from running


def random_states_checkpoint(**change):
    states = dict(current_random_states(), **change)
    return {'random_states': {'world_size': 1, 'ranks': {0: states}}}


@pytest.mark.parametrize('saved', [
    [1, 2],
    {'world_size': 1, 'ranks': [1]},
    {'world_size': '1', 'ranks': {}},
    {'world_size': 1, 'ranks': {'0': {}}},
    {'world_size': 1, 'ranks': {0: 'states'}},
    random_states_checkpoint(torch=torch.zeros(3))['random_states'],
    random_states_checkpoint(torch=[1, 2])['random_states'],
    random_states_checkpoint(numpy=('MT19937', [1, 2], 0))['random_states'],
    random_states_checkpoint(
        numpy=('MT19937', torch.zeros(5, dtype=torch.int64), 0, 0, 0.0)
    )['random_states'],
    random_states_checkpoint(python=(3, (1, 2), None))['random_states'],
    random_states_checkpoint(python=None)['random_states'],
    random_states_checkpoint(cuda=['a'])['random_states'],
    {'torch': torch.zeros(1)},  # the form before states were per rank
    torch.zeros(3),
])
def test_crafted_random_states_are_refused(saved):
    hook = RandomStateHook()
    runner = SimpleNamespace(_resume=True, _load_from='epoch_3.pth')
    with pytest.raises(CheckpointError) as info:
        hook.after_load_checkpoint(runner, {'random_states': saved})
    message = one_line(str(info.value), 'epoch_3.pth')
    assert message.startswith('Cannot resume from the checkpoint '
                              'epoch_3.pth: its random states')
    assert hook._to_restore is None


def test_saved_random_states_still_restore():
    hook = RandomStateHook()
    runner = SimpleNamespace(_resume=True, _load_from='epoch_3.pth')
    checkpoint = random_states_checkpoint()
    hook.after_load_checkpoint(runner, checkpoint)
    assert hook._to_restore is checkpoint['random_states']['ranks'][0]


# Exact round trips ---------------------------------------------------------

DTYPES = [
    np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
    np.int64, np.uint64, np.float16, np.float32, np.float64, np.complex64,
    np.complex128
]


def arrays(dtype, rng):
    """Arrays of ``dtype``, in both byte orders, of every odd shape."""
    base = rng.integers(0, 256, size=(4, 6, 2)).astype(dtype)
    if dtype().dtype.kind in 'fc':
        base = (rng.standard_normal((4, 6, 2)) * 1e3).astype(dtype)
        base.flat[0] = np.nan
        base.flat[1] = -np.inf
    shaped = [
        np.array(base[0, 0, 0]),  # 0-d
        base[:0], base[:, :0], base, base[:, ::2], base[::-1],
        base.transpose(2, 0, 1), base[1:3, 2, 0]
    ]
    if base.dtype.itemsize > 1:
        shaped += [array.astype(array.dtype.newbyteorder('>'))
                   for array in shaped]
    return shaped


def test_numpy_values_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    values = []
    for dtype in DTYPES:
        values += arrays(dtype, rng)
        if np.dtype(dtype).kind in 'biuf':
            values.append(dtype(np.iinfo(dtype).max if np.dtype(dtype).kind
                                in 'iu' else 1.5))
    path = tmp_path / 'values.pth'
    torch.save(to_weights_only_form({'values': values}), path)
    restored = from_weights_only_form(torch.load(path))['values']
    for original, back in zip(values, restored):
        assert type(back) is type(original)
        assert back.dtype == original.dtype, original.dtype
        assert back.shape == original.shape, (original.dtype, original.shape)
        np.testing.assert_array_equal(back, original)


def test_values_without_an_exact_form_are_refused_by_name():
    for value in (np.ones(2, np.longdouble), np.complex64(1j),
                  np.array(['a'])):
        with pytest.raises(TypeError, match=r"checkpoint\['v'\]"):
            to_weights_only_form({'v': value})


@pytest.mark.parametrize('length', [1, 4, 5])
def test_history_buffers_up_to_full_round_trip(tmp_path, length):
    """A buffer a long training filled holds exactly max_length values."""
    buffer = HistoryBuffer(
        list(np.arange(length, dtype=np.float64)), [1] * length, 5)
    assert len(buffer.data[0]) == length
    path = tmp_path / 'buffer.pth'
    torch.save(to_weights_only_form({'loss': buffer}), path)
    back = from_weights_only_form(torch.load(path))['loss']
    assert back.max_length == 5
    for got, want in zip(back.data, buffer.data):
        np.testing.assert_array_equal(got, want)


def test_an_overfull_history_buffer_is_refused():
    saved = to_weights_only_form(HistoryBuffer([1.0] * 5, [1] * 5, 5))
    saved['max_length'] = 4
    with pytest.raises(CheckpointError, match='at most max_length=4'):
        from_weights_only_form({'loss': saved})


# Messages ------------------------------------------------------------------


@pytest.mark.parametrize('message, named', [
    ('Weights only load failed. This file can still be loaded, to do so '
     'you have two options, do those steps only if you trust the source '
     'of the checkpoint.\n\t(1) In PyTorch 2.6, we changed the default '
     'value of the `weights_only` argument in `torch.load` from `False` to '
     '`True`. Re-running `torch.load` with `weights_only` set to `False` '
     'will likely succeed, but it can result in arbitrary code execution. '
     'Do it only if you got the file from a trusted source.\n\t(2) '
     'Alternatively, to load with `weights_only=True` please check the '
     'recommended steps in the following error message.\n\tWeightsUnpickler '
     'error: Unsupported global: GLOBAL __main__.Exploit was not an allowed '
     'global by default. Please use `torch.serialization.add_safe_globals('
     '[Exploit])` or the `torch.serialization.safe_globals([Exploit])` '
     'context manager to allowlist this global if you trust this '
     'class/function.', '__main__.Exploit'),
    ('Weights only load failed. In PyTorch 2.6, we changed the default '
     'value of the `weights_only` argument in `torch.load` from `False` to '
     '`True`. Re-running `torch.load` with `weights_only` set to `False` '
     'will likely succeed, but it can result in arbitrary code execution. '
     'Do it only if you got the file from a trusted source.\n\n\nTrying to '
     'load unsupported GLOBAL posix.system whose module posix is blocked.'
     '\n\nCheck the documentation of torch.load to learn more about types '
     'accepted by default with weights_only https://pytorch.org/docs/'
     'stable/generated/torch.load.html.', 'posix.system'),
    ('Weights only load failed. Re-running `torch.load` with `weights_only`'
     ' set to `False` will likely succeed, but it can result in arbitrary '
     'code execution.Unsupported class nt.system', 'nt.system'),
])
def test_every_torch_wording_names_the_refused_global(
        good, monkeypatch, message, named):

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError(message)

    monkeypatch.setattr(torch, 'load', refuse)
    assert f'(the global {named})' in refused(good, 'Refused to load')


@pytest.mark.parametrize('protocol', [2, 5])
def test_pickled_code_is_refused_naming_it(tmp_path, protocol):
    marker = tmp_path / 'pwned'
    zipped = tmp_path / 'evil.pth'
    torch.save({'x': Exploit(marker)}, zipped)
    plain = tmp_path / f'plain_{protocol}.pkl'
    with open(plain, 'wb') as file:
        pickle.dump({'x': Exploit(marker)}, file, protocol=protocol)
    for path in (zipped, plain):
        with warnings.catch_warnings():  # torch's, about the protocol
            warnings.simplefilter('error')
            assert '(the global pathlib.' in refused(path, 'Refused to load')
    assert not marker.exists()


@pytest.mark.parametrize('content, shown', [
    (b'<!DOCTYPE html><html><body>Not Found</body></html>', "b'<!DOCTYPE"),
    (b'version https://git-lfs.github.com/spec/v1\n', "b'version"),
    (b'', 'it is empty'),
])
def test_a_file_that_is_no_pickle_gets_one_line(tmp_path, content, shown):
    path = tmp_path / 'download.pth'
    path.write_bytes(content)
    message = refused(path)
    assert message.startswith(f'Cannot read {path}: it is not a PyTorch '
                              f'checkpoint')
    assert shown in message


def test_damaged_pickles_never_carry_torchs_advice(tmp_path):
    """Bytes after a pickle's protocol opcode: torch's messages about them
    advise weights_only=False, over several lines."""
    rng = random.Random(3)
    for index in range(200):
        path = tmp_path / f'pickle_{index}.pth'
        path.write_bytes(b'\x80' + bytes([rng.randrange(1, 6)]) +
                         rng.randbytes(rng.randrange(0, 300)))
        refused(path)


# Downloads -----------------------------------------------------------------


class Server:
    """An http.server on 127.0.0.1 that serves ``files`` (name -> (body,
    announced length)), each at most ``requests`` times, then stops."""

    def __init__(self, files):
        files_ = files

        class Handler(http.server.BaseHTTPRequestHandler):

            def do_GET(self):
                body, length = files_.get(self.path[1:], (None, None))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(length))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        self.server.timeout = 5
        self.url = f'http://127.0.0.1:{self.server.server_port}'
        self.thread = threading.Thread(
            target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *args):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_downloads_enter_the_cache_only_whole(good, tmp_path, monkeypatch):
    import hashlib
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    cache = tmp_path / 'torch/hub/checkpoints'
    body = good.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    files = {
        'whole.pth': (body, len(body)),
        'cut.pth': (body[:1000], len(body)),
        f'named-{digest[:8]}.pth': (body, len(body)),
        'wrong-abcdef12.pth': (body, len(body)),
        'dated-20221111.pth': (body, len(body)),
    }
    with Server(files) as server:
        assert read_checkpoint(f'{server.url}/whole.pth')['meta']['epoch'] \
            == 1
        assert read_checkpoint(f'{server.url}/named-{digest[:8]}.pth')
        assert read_checkpoint(f'{server.url}/dated-20221111.pth')
        message = refused(f'{server.url}/cut.pth',
                          'the connection ended after 1000 of the '
                          f'{len(body)} bytes')
        assert 'nothing was cached' in message
        refused(f'{server.url}/wrong-abcdef12.pth',
                f'its SHA-256 starts with {digest[:8]}, not with the '
                f'abcdef12 its name carries')
    assert sorted(path.name for path in cache.iterdir()) == sorted(
        ['whole.pth', f'named-{digest[:8]}.pth', 'dated-20221111.pth'])
    # A cached file damaged later says where it came from.
    (cache / 'whole.pth').write_bytes(body[:1000])
    message = refused(f'{server.url}/whole.pth', 'truncated or corrupt')
    assert message.endswith(f'The file is the cached download of '
                            f'{server.url}/whole.pth: delete '
                            f'{cache / "whole.pth"} to download it again.')


@pytest.mark.parametrize('url, message', [
    ('http://[::1/x.pth', 'it is not a valid URL'),
    ('http://127.0.0.1:9/', 'the URL names no file'),
])
def test_invalid_urls_get_one_line(url, message):
    refused(url, message)


# Every entry point ---------------------------------------------------------


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    """One file of each kind the preflight refuses."""
    root = tmp_path_factory.mktemp('hostile')
    files = {}
    files['deep'] = root / 'deep.pth'
    torch.save({'meta': nested(450, key='k' * 16384)}, files['deep'])
    files['whole'] = root / 'whole.pth'
    torch.save(saved_array(torch.ones(2)), files['whole'])
    files['html'] = root / 'html.pth'
    files['html'].write_bytes(b'<html>Not Found</html>')
    files['pickle'] = root / 'plain.pkl'
    with open(files['pickle'], 'wb') as file:
        pickle.dump({'x': Exploit(root / 'pwned')}, file)
    files['bomb'] = root / 'bomb.pth'
    torch.save({'meta': dict(epoch=1, iter=2)}, files['bomb'])
    with zipfile.ZipFile(files['bomb'], 'a') as archive:
        info = zipfile.ZipInfo('bomb/extra')
        info.compress_type = zipfile.ZIP_BZIP2
        with archive.open(info, 'w') as record:
            for _ in range(10):
                record.write(bytes(1 << 20))
    return files


def test_every_entry_point_refuses_in_one_line(hostile, tmp_path, capsys,
                                               small_shapes):
    data = ['--cfg-options', f'data_root={small_shapes}/']
    image = next((small_shapes / 'val').glob('*.png'))
    for kind, path in hostile.items():
        pretrained = tmp_path / f'pretrained_{kind}.py'
        pretrained.write_text(
            f'_base_ = {str(DET_DEMO)!r}\n'
            f'model = dict(backbone=dict(init_cfg=dict(_delete_=True, '
            f'type="Pretrained", checkpoint={str(path)!r})))\n')
        calls = {
            'init_cfg': ('train', [str(pretrained), '--work-dir',
                                   str(tmp_path / 'w'), *data]),
            'load_from': ('train', [str(DET_DEMO), '--work-dir',
                                    str(tmp_path / 'w'), *data,
                                    f'load_from={path}']),
            '--resume': ('train', [str(DET_DEMO), '--work-dir',
                                   str(tmp_path / 'w'), '--resume',
                                   str(path), *data]),
            'test.py': ('test', [str(DET_DEMO), str(path), *data]),
            'convert': ('convert_checkpoint', [str(path),
                                               str(tmp_path / 'out.pth'),
                                               '--weights-only-safe']),
            'export': ('export_onnx', [str(tmp_path / 'out.onnx'), '--arch',
                                       't0', '--checkpoint', str(path)]),
            'image_demo': ('image_demo', [str(image), str(DET_DEMO),
                                          str(path)]),
        }
        for what, (tool, argv) in calls.items():
            start = time.perf_counter()
            with pytest.raises(SystemExit) as info:
                load_tool(tool).main(argv)
            err = capsys.readouterr().err.strip().splitlines()
            assert info.value.code == 1, (kind, what)
            assert time.perf_counter() - start < 10, (kind, what)
            one_line(err[-1], path)
            assert not any('Traceback' in line for line in err), (kind, what)
    assert not (hostile['pickle'].parent / 'pwned').exists()


def test_resume_refuses_crafted_random_states_in_one_line(
        tmp_path, capsys, small_shapes):
    """They pass the preflight and stop the run when the Runner loads the
    checkpoint, before any state is changed."""
    path = tmp_path / 'epoch_1.pth'
    torch.save(
        {
            'meta': dict(epoch=1, iter=1),
            'random_states': dict(world_size=1, ranks={0: {'torch': 1}})
        }, path)
    with pytest.raises(SystemExit) as info:
        load_tool('train').main([
            str(DET_DEMO), '--work-dir',
            str(tmp_path / 'work'), '--resume',
            str(path), '--cfg-options', f'data_root={small_shapes}/'
        ])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert not any('Traceback' in line for line in err)
    assert 'its random states for rank 0 are damaged: TypeError' in \
        one_line(err[-1], path)


# Fuzz ----------------------------------------------------------------------


def random_value(rng, depth):
    """A random part of a checkpoint: containers, plain values, tensors,
    and saved objects with random (often wrong) fields."""
    roll = rng.random()
    if depth <= 0 or roll < 0.3:
        return rng.choice([
            None, True, 3, -2**70, 1.5,
            float('nan'), 'x' * rng.randrange(0, 5000), b'\x00\x01',
            torch.ones(rng.randrange(0, 3), requires_grad=rng.random() < .5),
            torch.nn.Parameter(torch.zeros(2)),
            torch.zeros(2, dtype=torch.bfloat16),
            torch.zeros(2).to_sparse(),
        ])
    if roll < 0.55:
        fields = {
            'dtype': rng.choice(['<f4', '>i8', '|b1', 'O', 'xyz', 3, '<U4',
                                 '<f2', '<c8']),
            'data': random_value(rng, 0),
            'value': rng.choice([1, 1.5, 300, 'a', None, 2**80]),
            'log_history': torch.arange(rng.randrange(0, 6)),
            'count_history': torch.ones(rng.randrange(0, 6),
                                        dtype=torch.int64),
            'max_length': rng.choice([0, 1, 5, 2**70, True, '5']),
        }
        form = rng.choice(['numpy.ndarray', 'numpy.scalar',
                           'mmengine.HistoryBuffer', 'numpy.matrix', 7])
        chosen = rng.sample(sorted(fields), rng.randrange(0, 4))
        if rng.random() < 0.5 and form in ('numpy.ndarray', 'numpy.scalar'):
            chosen = ['dtype', 'data' if form == 'numpy.ndarray' else 'value']
        return {TYPE_KEY: form, **{key: fields[key] for key in chosen}}
    if roll < 0.8:
        return {
            rng.choice(['a', 'b' * 300, 1, (1, 2)]): random_value(
                rng, depth - 1)
            for _ in range(rng.randrange(0, 4))
        }
    return [random_value(rng, depth - 1) for _ in range(rng.randrange(0, 4))]


def test_fuzzed_structures_restore_or_fail_in_one_line(tmp_path):
    rng = random.Random(0)
    outcomes = {'restored': 0, 'refused': 0}
    for trial in range(1000):
        content = {'meta': random_value(rng, rng.randrange(1, 6))}
        if rng.random() < 0.1:  # deeper than the limit
            content = nested(rng.randrange(MAX_DEPTH, 3 * MAX_DEPTH),
                             leaf=content)
        path = tmp_path / f'fuzz_{trial}.pth'
        torch.save(content, path)
        start = time.perf_counter()
        try:
            restore_checkpoint(read_checkpoint(path), str(path))
            outcomes['restored'] += 1
        except CheckpointError as err:
            one_line(str(err), path)
            outcomes['refused'] += 1
        assert time.perf_counter() - start < 1, trial
    assert min(outcomes.values()) > 100, outcomes


def test_fuzzed_zip_records_load_or_fail_in_one_line(good, tmp_path):
    """Random methods, claimed sizes and extra records."""
    rng = random.Random(1)
    for trial in range(200):
        path = tmp_path / f'zip_{trial}.pth'
        extra = [(f'extra{index}', bytes(rng.randrange(0, 50_000)),
                  rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED,
                              zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
                 for index in range(rng.randrange(0, 3))]
        rewrite_zip(good, path, extra=extra)
        if extra and rng.random() < 0.5:
            claim_size(path, extra[0][0], rng.choice([0, 1, 2**31, 2**32 - 1]))
        start = time.perf_counter()
        try:
            assert read_checkpoint(path)['meta']['epoch'] == 1
            assert all(method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
                       for _, _, method in extra)
        except CheckpointError as err:
            one_line(str(err), path)
        assert time.perf_counter() - start < 1, trial
