"""Damaged checkpoint files: every one ends in one CheckpointError that
names the file, before any weight is used; the tools print it as one line.

The fuzzing is deterministic (seeded), so a failure reproduces."""
import random
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import ONE_BLOCK_ARCH, REPO, load_tool

from fasternet_mm import FasterNet
from fasternet_mm.checkpoint import read_checkpoint
from fasternet_mm.errors import CheckpointError

DET_DEMO = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'


def assert_refused(path, match=None):
    with pytest.raises(CheckpointError, match=match) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)
    return str(info.value)


@pytest.fixture(scope='module')
def good(tmp_path_factory):
    """A real checkpoint as MMEngine writes one: weights, meta, optimizer."""
    path = tmp_path_factory.mktemp('good') / 'epoch_1.pth'
    model = FasterNet(arch=ONE_BLOCK_ARCH)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.rand(2, 3, 32, 32))[-1].sum().backward()
    optimizer.step()
    torch.save(
        dict(
            meta=dict(epoch=1, iter=4, seed=0),
            state_dict=model.state_dict(),
            optimizer=optimizer.state_dict()), path)
    return path


def records(path):
    """(name, first data byte, size) of each record of a zip checkpoint."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    data = Path(path).read_bytes()
    out = []
    for info in infos:
        start = info.header_offset + 30  # fixed part of the local header
        name_len = int.from_bytes(data[info.header_offset + 26:][:2], 'little')
        extra_len = int.from_bytes(data[info.header_offset + 28:][:2],
                                   'little')
        out.append((info.filename, start + name_len + extra_len,
                    info.file_size))
    return out


def test_every_first_byte_then_random_bytes(tmp_path):
    """0-255 as the first byte (many are pickle opcodes), then seeded
    random bytes of random length: 512 files, none escapes."""
    rng = random.Random(0)
    for index in range(512):
        path = tmp_path / f'random_{index}.pth'
        tail = rng.randbytes(rng.choice((0, 1, 7, 64, 1000, 5000)))
        path.write_bytes(bytes([index % 256]) + tail)
        assert_refused(path)


def test_truncated_at_many_offsets(good, tmp_path):
    data = good.read_bytes()
    rng = random.Random(1)
    offsets = sorted({0, 1, 2, 30, 100, len(data) - 1, len(data) - 22} |
                     {rng.randrange(len(data)) for _ in range(30)})
    assert len(offsets) >= 20
    for offset in offsets:
        path = tmp_path / f'cut_{offset}.pth'
        path.write_bytes(data[:offset])
        assert_refused(path)


@pytest.mark.parametrize('record', ['data.pkl', 'data/'])
def test_byte_flips_are_refused_naming_the_record(good, tmp_path, record):
    """Seeded flips in the pickle and in the tensor data. torch.load alone
    would load most tensor flips silently, as wrong weights."""
    data = good.read_bytes()
    targets = [(name, start, size) for name, start, size in records(good)
               if name.split('/', 1)[1].startswith(record) and size]
    rng = random.Random(2)
    silently_wrong = 0
    for trial in range(25):
        name, start, size = rng.choice(targets)
        position = start + rng.randrange(size)
        damaged = bytearray(data)
        damaged[position] ^= 1 << rng.randrange(8)
        path = tmp_path / f'flip_{trial}.pth'
        path.write_bytes(bytes(damaged))
        assert_refused(path, match=f"record '{name.split('/', 1)[1]}' "
                       'fails its CRC-32')
        try:
            torch.load(path, weights_only=True)
            silently_wrong += 1
        except Exception:  # noqa: B902
            pass
    if record == 'data/':
        assert silently_wrong == 25  # what the CRC check protects against


def test_a_flip_in_the_last_record_is_refused_naming_it(good, tmp_path):
    """Every record is checked, the last one (torch's
    ``.data/serialization_id``) included."""
    name, start, size = records(good)[-1]
    assert size
    data = bytearray(good.read_bytes())
    data[start + size - 1] ^= 0x01
    path = tmp_path / 'last_record.pth'
    path.write_bytes(bytes(data))
    assert_refused(
        path, match=f"record '{name.split('/', 1)[1]}' fails its CRC-32")


def test_undamaged_and_legacy_checkpoints_still_load(good, tmp_path):
    loaded = read_checkpoint(good)
    assert loaded['meta']['epoch'] == 1
    legacy = tmp_path / 'legacy.pth'
    torch.save(
        loaded['state_dict'], legacy, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(legacy)  # no checksums to check
    for key, value in read_checkpoint(legacy).items():
        assert torch.equal(value, loaded['state_dict'][key])


@pytest.fixture(scope='module')
def damaged(good, tmp_path_factory):
    """``good`` with one byte flipped in a tensor record."""
    path = tmp_path_factory.mktemp('damaged') / 'epoch_2.pth'
    name, start, size = next(r for r in records(good) if '/data/' in r[0])
    data = bytearray(good.read_bytes())
    data[start + size // 2] ^= 0x10
    path.write_bytes(bytes(data))
    return path


def test_every_tool_reports_a_damaged_file_in_one_line(
        damaged, tmp_path, capsys, small_shapes):
    data_root = small_shapes
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(str(damaged))
    data = ['--cfg-options', f'data_root={data_root}/']
    pretrained = tmp_path / 'pretrained_backbone.py'
    pretrained.write_text(
        f'_base_ = {str(DET_DEMO)!r}\n'
        f'model = dict(backbone=dict(init_cfg=dict(_delete_=True, '
        f'type="Pretrained", '
        f'checkpoint={str(damaged)!r})))\n')
    calls = {
        'init_cfg Pretrained': ('train', [
            str(pretrained), '--work-dir',
            str(tmp_path / 'w1'), *data
        ]),
        'load_from': ('train', [
            str(DET_DEMO), '--work-dir',
            str(tmp_path / 'w2'), *data, f'load_from={damaged}'
        ]),
        '--resume CKPT': ('train', [
            str(DET_DEMO), '--work-dir',
            str(tmp_path / 'w3'), '--resume',
            str(damaged), *data
        ]),
        '--resume (latest)': ('train', [
            str(DET_DEMO), '--work-dir',
            str(work_dir), '--resume', *data
        ]),
        'test.py CKPT': ('test', [str(DET_DEMO), str(damaged), *data]),
        'convert_checkpoint.py':
        ('convert_checkpoint', [str(damaged),
                                str(tmp_path / 'out.pth')]),
        'export_onnx.py --checkpoint': ('export_onnx', [
            str(tmp_path / 'out.onnx'), '--arch', 't0', '--checkpoint',
            str(damaged)
        ]),
    }
    for what, (tool, argv) in calls.items():
        with pytest.raises(SystemExit) as info:
            load_tool(tool).main(argv)
        err = capsys.readouterr().err.strip()
        assert info.value.code == 1, what
        assert len(err.splitlines()) == 1 and 'Traceback' not in err, what
        assert str(damaged) in err and "fails its CRC-32" in err, (what, err)
    assert not (tmp_path / 'out.pth').exists()
