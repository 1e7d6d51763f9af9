"""Reading checkpoint files safely, and writing them whole.

:func:`read_checkpoint` unpickles weights only, so a file crafted to run
code is refused before anything runs, checks the CRC-32 of every record of
a zip-format file, and turns whatever goes wrong into one
:class:`~fasternet_mm.errors.CheckpointError` that names the file. A URL is
downloaded into torch's hub cache first. :func:`save_whole` is how the
converters write, so that no reader ever meets a half-written file.
"""
import mmap
import os
import os.path as osp
import pickle
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from pathlib import Path
from typing import Dict, Optional, Union
from urllib.parse import urlparse

import torch

from ..errors import CheckpointError
from .allowlist import mmengine_checkpoints

try:  # zlib-ng's CRC-32 runs about 5x faster than the standard library's
    from zlib_ng.zlib_ng import crc32
except ImportError:
    from zlib import crc32

# A zip local file header: 30 fixed bytes, the last 4 of which give the
# lengths of the name and the extra field that follow.
_LOCAL_HEADER_SIZE = 30
_NAME_LENGTHS_AT = 26


def read_checkpoint(path: Union[str, PathLike],
                    map_location: str = 'cpu',
                    trust_pickle: bool = False) -> Dict:
    """Read a checkpoint file or URL with weights-only unpickling.

    Only tensors, containers and plain Python values are unpickled, so a file
    crafted to run code when loaded is refused before anything runs. A
    zip-format file (what ``torch.save`` writes since torch 1.6) has every
    record's CRC-32 checked first, so damaged weights are never loaded
    silently; the legacy format carries no checksum and loads unchecked.
    A URL is downloaded into torch's hub cache and read like a local file.

    Args:
        path: A local path or an http(s) URL.
        map_location: Where tensors are loaded. Defaults to ``'cpu'``.
        trust_pickle: Unpickle arbitrary objects, which can run code: only
            for a file you trust. Defaults to False.

    Raises:
        FileNotFoundError: if a local path does not exist.
        CheckpointError: if the file cannot be read as a checkpoint for any
            reason (corrupt, truncated, not a checkpoint at all, a failed
            checksum, pickled objects other than weights), or cannot be
            downloaded. The message names the file.
    """
    path = str(path)
    if path.startswith(('http://', 'https://')):
        path = download_checkpoint(path)
    elif not Path(path).is_file():
        raise FileNotFoundError(f'Checkpoint file not found: {path!r}')
    # The checksums are checked in a thread while torch.load reads: both
    # release the GIL, so on two or more cores the check costs next to
    # nothing (docs/reliability.md). A damaged record is reported even when
    # it also made torch.load fail: it is the better explanation.
    with ThreadPoolExecutor(max_workers=1) as pool:
        checked = pool.submit(check_zip_records, path)
        try:
            with mmengine_checkpoints():
                content = torch.load(
                    path,
                    map_location=map_location,
                    weights_only=not trust_pickle)
        except Exception as err:  # noqa: B902
            checked.result()
            raise _load_error(path, err, trust_pickle) from None
        checked.result()
    return content


def _load_error(path: str, err: Exception,
                trust_pickle: bool) -> CheckpointError:
    if isinstance(err, pickle.UnpicklingError) and not trust_pickle:
        return CheckpointError(_unsafe_message(path, err))
    # Arbitrary bytes reach torch's and pickle's parsers, which raise nearly
    # any type (IndexError, KeyError, OverflowError, ...).
    return CheckpointError(_corrupt_message(path, err))


def hub_cache_path(url: str) -> str:
    """Where torch's hub cache keeps the file of ``url``."""
    return osp.join(torch.hub.get_dir(), 'checkpoints',
                    osp.basename(urlparse(url).path))


def download_checkpoint(url: str) -> str:
    """The local path of ``url`` in torch's hub cache, downloaded first if
    it is not there yet."""
    cached = hub_cache_path(url)
    if osp.isfile(cached):
        return cached
    os.makedirs(osp.dirname(cached), exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, cached, progress=False)
    except OSError as err:  # URLError, HTTPError, timeouts
        raise CheckpointError(
            f'Cannot download the checkpoint {url} ({type(err).__name__}: '
            f'{err}). Offline, download it elsewhere and pass its local '
            f'path.') from None
    return cached


def check_zip_records(path: str) -> None:
    """Check the CRC-32 of every record of a zip-format checkpoint.

    ``torch.load`` reads records by offset and never checks their
    checksums, so a flipped byte in the tensor data would load as a wrong
    weight. Files that are not zip archives are left to ``torch.load``.

    Raises:
        CheckpointError: naming the first damaged record and the file.
    """
    try:
        damaged = _first_damaged_record(path)
    except Exception as err:  # noqa: B902  (damaged zip headers)
        raise CheckpointError(_corrupt_message(path, err)) from None
    if damaged is not None:
        # torch names records '<archive>/data/17'; the folder is the
        # file's stem at save time, which says nothing here.
        record = damaged.split('/', 1)[-1]
        raise CheckpointError(
            f'The checkpoint {path} is damaged: its record {record!r} fails '
            f'its CRC-32 check, so some weights or metadata would load '
            f'wrong. Copy or download the file again.')


def _first_damaged_record(path: str) -> Optional[str]:
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive, open(path, 'rb') as file, \
            mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data, \
            memoryview(data) as view:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                if not _compressed_record_ok(archive, info):
                    return info.filename
                continue
            # torch stores records uncompressed: checksum them in place in
            # the mapped file, without copying hundreds of MB.
            name_len, extra_len = struct.unpack_from(
                '<HH', data, info.header_offset + _NAME_LENGTHS_AT)
            start = info.header_offset + _LOCAL_HEADER_SIZE + name_len + \
                extra_len
            with view[start:start + info.compress_size] as body:
                if crc32(body) != info.CRC:
                    return info.filename
    return None


def _compressed_record_ok(archive: zipfile.ZipFile,
                          info: zipfile.ZipInfo) -> bool:
    try:
        with archive.open(info) as record:
            while record.read(1 << 20):  # zipfile checks the CRC at the end
                pass
    except zipfile.BadZipFile:
        return False
    return True


def _corrupt_message(path: str, err: Exception) -> str:
    return (f'Cannot read the checkpoint {path}: it is not a PyTorch '
            f'checkpoint, or it is truncated or corrupt '
            f'({type(err).__name__}: {err})')


def _unsafe_message(path: str, err: Exception) -> str:
    if 'Unsupported operand' in str(err):  # not a pickle stream at all
        return _corrupt_message(path, err)
    # torch's message is long; keep its line that names the refused global.
    lines = [line.strip() for line in str(err).splitlines()]
    named = [line for line in lines if 'Unsupported' in line]
    first_line = (named or lines or [''])[0]
    return (
        f'Refused to load {path}: it holds pickled objects other than '
        f'tensors and plain containers, and unpickling them could run '
        f'arbitrary code ({first_line}). If you trust the file, re-save its '
        f'weights once with tools/convert_checkpoint.py --trust-pickle.')


def save_whole(content: Dict, dst: Union[str, PathLike]) -> None:
    """``torch.save`` to ``dst`` through a temporary file renamed into
    place: an interrupted run leaves no half-written file."""
    partial = f'{dst}.partial'
    torch.save(content, partial)
    os.replace(partial, dst)
