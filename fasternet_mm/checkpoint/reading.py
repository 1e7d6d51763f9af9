"""Reading checkpoint files safely, and writing them whole.

:func:`read_checkpoint` unpickles weights only, so a file crafted to run
code is refused before anything runs; checks the layout of a zip-format
file before ``torch.load`` opens it and the CRC-32 of every record while it
reads; and turns whatever goes wrong into one line, a
:class:`~fasternet_mm.errors.CheckpointError` that names the file. A URL is
downloaded into torch's hub cache first, and enters the cache only once its
size, and the hash its name carries, are checked. :func:`save_whole` is how
the converters write, so that no reader ever meets a half-written file.
"""
import hashlib
import http.client
import io
import mmap
import os
import os.path as osp
import pickle
import pickletools
import re
import struct
import tempfile
import urllib.request
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union
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
# Deflate cannot expand one byte into more than 1032; a record that claims
# more is crafted. torch.save stores records uncompressed, and torch.load
# reads stored or deflated records only.
DEFLATE_MAX_RATIO = 1032
_READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_METHOD_NAMES = {zipfile.ZIP_BZIP2: 'bzip2', zipfile.ZIP_LZMA: 'lzma'}
# How much of a pickle is scanned for the name of a refused global.
_SCAN_BYTES = 1 << 20
# A refused global in torch's messages: 'Unsupported global: GLOBAL x.y was
# not an allowed global' (torch 2.4-2.14), 'unsupported GLOBAL x.y whose
# module x is blocked' (torch 2.6-2.14), 'Unsupported class x.y' (older).
_REFUSED_GLOBAL = re.compile(
    r'unsupported\s+(?:global:\s+GLOBAL|GLOBAL|class)\s+([\w.]+)',
    re.IGNORECASE)
# Sentences of torch's messages that do not belong in ours: its advice to
# turn weights-only loading off, its requests and its links.
_TORCH_ADVICE = re.compile(
    r'False|Re-running|trusted source|file an issue|documentation|'
    r'safe_globals|allowlist|do those steps|two options|Alternatively|'
    r'Weights only load failed', re.IGNORECASE)
# The SHA-256 prefix that torch hub's naming convention puts in a file
# name (resnet18-f37072fd.pth); digits alone are a date, not a hash.
_HASH_IN_NAME = re.compile(r'-([0-9a-f]{8,64})\.[^/]*$')
_DOWNLOAD_TIMEOUT_S = 60


def read_checkpoint(path: Union[str, PathLike],
                    map_location: str = 'cpu',
                    trust_pickle: bool = False) -> Dict:
    """Read a checkpoint file or URL with weights-only unpickling.

    Only tensors, containers and plain Python values are unpickled, so a file
    crafted to run code when loaded is refused before anything runs. A
    zip-format file (what ``torch.save`` writes since torch 1.6) has its
    records' methods and sizes checked before ``torch.load`` opens it, and
    every record's CRC-32 checked while it reads, so damaged weights are
    never loaded silently; the legacy format carries no checksum and loads
    unchecked. A URL is downloaded into torch's hub cache and read like a
    local file.

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
            downloaded. The message is one line and names the file.
    """
    path = str(path)
    if not path.startswith(('http://', 'https://')):
        if not Path(path).is_file():
            raise FileNotFoundError(f'Checkpoint file not found: {path!r}')
        return _read_file(path, map_location, trust_pickle)
    cached = download_checkpoint(path)
    try:
        return _read_file(cached, map_location, trust_pickle)
    except CheckpointError as err:
        raise CheckpointError(
            f'{err} The file is the cached download of {path}: delete '
            f'{cached} to download it again.') from None


def _read_file(path: str, map_location: str, trust_pickle: bool) -> Dict:
    check_zip_layout(path)
    # The checksums are checked in a thread while torch.load reads: both
    # release the GIL, so on two or more cores the check costs next to
    # nothing (docs/reliability.md). A damaged record is reported even when
    # it also made torch.load fail: it is the better explanation.
    with ThreadPoolExecutor(max_workers=1) as pool:
        checked = pool.submit(check_zip_records, path)
        try:
            with mmengine_checkpoints(), warnings.catch_warnings():
                # torch warns of any pickle protocol but 2 before it reads
                # (or refuses) the pickle, which would add lines to ours.
                warnings.filterwarnings(
                    'ignore', 'Detected pickle protocol', UserWarning)
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
    with open(path, 'rb') as file:
        head = file.read(16)
    is_zip = zipfile.is_zipfile(path)
    # A pickle starts with its protocol (0x80): torch.save has written
    # protocol 2 since torch 0.4, in a zip file (a local header first, even
    # when the end is cut off) since torch 1.6.
    if not is_zip and not head.startswith((b'\x80', b'PK\x03\x04')):
        what = 'it is empty' if not head else f'it starts with {head!r}'
        return CheckpointError(
            f'Cannot read {path}: it is not a PyTorch checkpoint ({what})')
    if isinstance(err, pickle.UnpicklingError) and not trust_pickle:
        refused = _refused_global(str(err)) or _first_unknown_global(
            path, is_zip)
        if refused:
            return CheckpointError(_unsafe_message(path, f'the global '
                                                   f'{refused}'))
        if 'Unsupported operand' not in str(err):  # else not a pickle
            return CheckpointError(_unsafe_message(path, _reason(err)))
    # Arbitrary bytes reach torch's and pickle's parsers, which raise nearly
    # any type (IndexError, KeyError, OverflowError, ...).
    return CheckpointError(_corrupt_message(path, err))


def _reason(err: Exception) -> str:
    """The first line of ``err`` that is neither empty nor advice of
    torch's, cut to 200 characters; else its type's name."""
    for line in str(err).splitlines():
        line = line.strip().replace('WeightsUnpickler error:', '').strip()
        sentences = [
            part for part in re.split(r'(?<=\.)\s+', line)
            if part and not _TORCH_ADVICE.search(part)
        ]
        if sentences:
            text = ' '.join(sentences)
            text = text if len(text) <= 200 else text[:197] + '...'
            return f'{type(err).__name__}: {text}'
    return type(err).__name__


def _refused_global(message: str) -> Optional[str]:
    """The global that torch's weights-only unpickler refused, as its
    message names it, in any of torch's wordings."""
    match = _REFUSED_GLOBAL.search(message)
    return match[1].rstrip('.') if match else None


def _first_unknown_global(path: str, is_zip: bool) -> Optional[str]:
    """The first global in the checkpoint's pickle that torch's
    weights-only unpickler does not allow, read from the pickle's opcodes
    without running them: for the messages of torch that name none (a
    pickle in a protocol it cannot parse)."""
    try:
        if is_zip:
            with zipfile.ZipFile(path) as archive:
                name = next(
                    info for info in archive.infolist()
                    if info.filename.endswith('data.pkl'))
                with archive.open(name) as record:
                    data = record.read(_SCAN_BYTES)
        else:
            with open(path, 'rb') as file:
                data = file.read(_SCAN_BYTES)
    except Exception:  # noqa: B902  (a damaged archive names nothing)
        return None
    allowed = _allowed_globals()
    for name in _pickled_globals(data):
        if name not in allowed:
            return name
    return None


def _pickled_globals(data: bytes) -> List[str]:
    """The module.name of every global a pickle names, in order, read by
    ``pickletools`` (which runs nothing) up to where ``data`` ends or
    stops parsing."""
    names, strings, memo = [], [], {}
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if opcode.name in ('GLOBAL', 'INST'):
                names.append(arg.replace(' ', '.'))
            elif opcode.name == 'STACK_GLOBAL' and len(strings) >= 2:
                names.append(f'{strings[-2]}.{strings[-1]}')
            elif isinstance(arg, str) and 'UNICODE' in opcode.name:
                strings.append(arg)
            elif opcode.name == 'MEMOIZE' and strings:
                memo[len(memo)] = strings[-1]
            elif opcode.name in ('BINPUT', 'LONG_BINPUT') and strings:
                memo[arg] = strings[-1]
            elif opcode.name in ('BINGET', 'LONG_BINGET') and arg in memo:
                strings.append(memo[arg])
    except Exception:  # noqa: B902  (the end of data, or a damaged pickle)
        pass
    return names


def _allowed_globals() -> set:
    """The globals torch's weights-only unpickler allows now; empty where
    torch keeps them elsewhere."""
    try:
        from torch import _weights_only_unpickler as unpickler
        return set(unpickler._get_allowed_globals()) | set(
            unpickler._get_user_allowed_globals())
    except (ImportError, AttributeError):
        return set()


def hub_cache_path(url: str) -> str:
    """Where torch's hub cache keeps the file of ``url``.

    Raises:
        CheckpointError: if ``url`` is not a valid URL or names no file.
    """
    try:
        name = osp.basename(urlparse(url).path)
    except ValueError as err:  # e.g. 'http://[::1/x.pth'
        raise CheckpointError(
            f'Cannot download the checkpoint {url}: it is not a valid URL '
            f'({err})') from None
    if not name:
        raise CheckpointError(f'Cannot download the checkpoint {url}: the '
                              f'URL names no file')
    return osp.join(torch.hub.get_dir(), 'checkpoints', name)


def download_checkpoint(url: str) -> str:
    """The local path of ``url`` in torch's hub cache, downloaded first if
    it is not there yet.

    The download goes to a temporary file that enters the cache only when
    it holds as many bytes as the server announced (``Content-Length``)
    and, where the file name carries a SHA-256 prefix as torch hub names
    files (``resnet18-f37072fd.pth``), when its hash starts with it: a
    dropped connection leaves nothing in the cache.

    Raises:
        CheckpointError: if the URL is invalid, or the download fails or is
            incomplete.
    """
    cached = hub_cache_path(url)
    if osp.isfile(cached):
        return cached
    os.makedirs(osp.dirname(cached), exist_ok=True)
    cannot = f'Cannot download the checkpoint {url}'
    handle, partial = tempfile.mkstemp(
        prefix=osp.basename(cached) + '.',
        suffix='.partial',
        dir=osp.dirname(cached))
    try:
        with os.fdopen(handle, 'wb') as file:
            size, announced, digest = _fetch(url, file)
        if announced is not None and size != announced:
            raise CheckpointError(
                f'{cannot}: the connection ended after {size} of the '
                f'{announced} bytes the server announced; nothing was '
                f'cached. Try again.')
        prefix = _HASH_IN_NAME.search(osp.basename(cached))
        if prefix and not prefix[1].isdigit() and not digest.startswith(
                prefix[1]):
            raise CheckpointError(
                f'{cannot}: its SHA-256 starts with {digest[:len(prefix[1])]}'
                f', not with the {prefix[1]} its name carries; nothing was '
                f'cached.')
        os.replace(partial, cached)
    except (OSError, http.client.HTTPException, ValueError) as err:
        # URLError, HTTPError, timeouts, resets, IncompleteRead
        raise CheckpointError(
            f'{cannot} ({type(err).__name__}: {err}). Offline, download it '
            f'elsewhere and pass its local path.') from None
    finally:
        if osp.exists(partial):
            os.remove(partial)
    return cached


def _fetch(url: str, file) -> Tuple[int, Optional[int], str]:
    """Write the body of ``url`` to ``file``; return its size, the size
    the server announced (None if it did not) and its SHA-256."""
    request = urllib.request.Request(
        url, headers={'User-Agent': 'fasternet_mm'})
    sha256 = hashlib.sha256()
    size = 0
    with urllib.request.urlopen(
            request, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        announced = response.headers.get('Content-Length')
        announced = int(announced) if announced and \
            announced.strip().isdigit() else None
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            file.write(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return size, announced, sha256.hexdigest()


def check_zip_layout(path: str) -> None:
    """Refuse a zip-format checkpoint whose records ``torch.load`` must not
    be handed: compressed by a method it cannot read (bzip2, lzma), claiming
    more than deflate can expand (:data:`DEFLATE_MAX_RATIO`), or reaching
    past the end of the file. Reads the zip's directory only, so it is
    cheap, and runs before ``torch.load`` opens the file. Files that are not
    zip archives are left to ``torch.load``.

    Raises:
        CheckpointError: naming the file, the record and the limit.
    """
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except Exception as err:  # noqa: B902  (damaged zip headers)
        raise CheckpointError(_corrupt_message(path, err)) from None
    file_size = os.path.getsize(path)
    for info in infos:
        record = _record_name(info.filename)
        refused = f'Refused to read the checkpoint {path}: its record ' \
            f'{record!r}'
        if info.compress_type not in _READABLE_METHODS:
            method = _METHOD_NAMES.get(info.compress_type,
                                       f'method {info.compress_type}')
            raise CheckpointError(
                f'{refused} is {method}-compressed; PyTorch checkpoints '
                f'store their records, or deflate them, and torch.load reads '
                f'nothing else')
        if info.compress_type == zipfile.ZIP_STORED and \
                info.file_size != info.compress_size:
            raise CheckpointError(
                f'{refused} is stored uncompressed but claims '
                f'{info.file_size} bytes in {info.compress_size}; the file '
                f'is damaged or crafted')
        if info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 1024:
            raise CheckpointError(
                f'{refused} claims {info.file_size} bytes from '
                f'{info.compress_size} deflated, more than deflate\'s limit '
                f'of {DEFLATE_MAX_RATIO} to 1: the file is a decompression '
                f'bomb or damaged')
        if info.header_offset + info.compress_size > file_size:
            raise CheckpointError(
                f'{refused} ends past the end of the file '
                f'({file_size} bytes): the file is truncated or damaged')
    if sum(info.compress_size for info in infos) > file_size:
        raise CheckpointError(
            f'Refused to read the checkpoint {path}: its records overlap '
            f'(they claim more bytes than the file has); the file is '
            f'damaged or crafted')


def _record_name(name: str) -> str:
    # torch names records '<archive>/data/17'; the folder is the file's
    # stem at save time, which says nothing here.
    return name.split('/', 1)[-1]


def check_zip_records(path: str) -> None:
    """Check the CRC-32 of every record of a zip-format checkpoint.

    ``torch.load`` reads records by offset and never checks their
    checksums, so a flipped byte in the tensor data would load as a wrong
    weight. Deflated records are decompressed to at most the size they
    claim, which :func:`check_zip_layout` bounds. Files that are not zip
    archives are left to ``torch.load``.

    Raises:
        CheckpointError: naming the first damaged record and the file.
    """
    try:
        damaged = _first_damaged_record(path)
    except Exception as err:  # noqa: B902  (damaged zip headers)
        raise CheckpointError(_corrupt_message(path, err)) from None
    if damaged is not None:
        raise CheckpointError(
            f'The checkpoint {path} is damaged: its record '
            f'{_record_name(damaged)!r} fails its CRC-32 check, so some '
            f'weights or metadata would load wrong. Copy or download the '
            f'file again.')


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
    if info.compress_type not in _READABLE_METHODS or \
            info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 1024:
        return False  # refused by check_zip_layout before any reading
    try:
        # zipfile stops at the size the record claims, and checks the
        # CRC-32 at the end.
        with archive.open(info) as record:
            while record.read(1 << 20):
                pass
    except zipfile.BadZipFile:
        return False
    return True


def _corrupt_message(path: str, err: Exception) -> str:
    return (f'Cannot read the checkpoint {path}: it is not a PyTorch '
            f'checkpoint, or it is truncated or corrupt ({_reason(err)})')


def _unsafe_message(path: str, what: str) -> str:
    return (
        f'Refused to load {path}: it holds pickled objects other than '
        f'tensors and plain containers ({what}), and unpickling them could '
        f'run arbitrary code. If you trust the file, re-save its weights '
        f'once with tools/convert_checkpoint.py --trust-pickle.')


def save_whole(content: Dict, dst: Union[str, PathLike]) -> None:
    """``torch.save`` to ``dst`` through a temporary file renamed into
    place: an interrupted run leaves no half-written file."""
    partial = f'{dst}.partial'
    torch.save(content, partial)
    os.replace(partial, dst)
