"""What this CPU offers: its vector and matrix instruction sets, read from
``/proc/cpuinfo``, with torch's CPU capability and native bf16. The
benchmark prints them; int8 export picks its weight range by VNNI."""
import os.path as osp
from typing import Dict

import torch


def cpu_features(cpuinfo: str = '/proc/cpuinfo') -> Dict[str, object]:
    """What this CPU offers the benchmark: AVX2, AVX-512, VNNI
    (avx512_vnni or avx_vnni), AMX (amx_tile and amx_bf16) and avx512_bf16
    from the flags of ``cpuinfo`` (None where it cannot be read, as off
    Linux), torch's CPU capability, and whether bf16 runs natively
    (:func:`fasternet_mm.precision.native_bf16`)."""
    from .precision import native_bf16
    flags = None
    if osp.exists(cpuinfo):
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith('flags'):
                    flags = set(line.split(':', 1)[1].split())
                    break
    features: Dict[str, object] = dict(
        torch_capability=torch.backends.cpu.get_cpu_capability(),
        native_bf16=native_bf16('cpu'))
    if flags is None:
        features.update(
            avx2=None, avx512=None, vnni=None, amx=None, avx512_bf16=None)
    else:
        features.update(
            avx2='avx2' in flags,
            avx512='avx512f' in flags,
            vnni=bool(flags & {'avx512_vnni', 'avx_vnni'}),
            amx={'amx_tile', 'amx_bf16'} <= flags,
            avx512_bf16='avx512_bf16' in flags)
    return features


def describe_cpu(features: Dict[str, object]) -> str:
    """:func:`cpu_features` as one line."""

    def word(value):
        return 'unknown' if value is None else ('yes' if value else 'no')

    return (f"CPU: AVX2 {word(features['avx2'])}, AVX-512 "
            f"{word(features['avx512'])}, VNNI {word(features['vnni'])}, "
            f"AMX {word(features['amx'])}, avx512_bf16 "
            f"{word(features['avx512_bf16'])}; torch capability "
            f"{features['torch_capability']}; native bf16 "
            f"{word(features['native_bf16'])}")
