# Copyright (c) fasternet_mm contributors. Licensed under the MIT licence.
"""The instruction set oneDNN's CPU kernels run on here: what the CPU
offers, capped by ``ONEDNN_MAX_CPU_ISA`` (or its old name
``DNNL_MAX_CPU_ISA``). The deploy form picks its memory format by it, the
benchmark its peak rate, and bf16 is native only above some caps. Imports
nothing of the package."""
import os

import torch

# The ISA classes of onednn_isa(), fastest first.
ISA_CLASSES = ('avx512', 'avx2', 'other')

# ONEDNN_MAX_CPU_ISA values that keep oneDNN below AVX-512, and below AVX2.
_CAPS_BELOW_AVX512 = ('SSE41', 'AVX', 'AVX2', 'AVX2_VNNI', 'AVX2_VNNI_2')
_CAPS_BELOW_AVX2 = ('SSE41', 'AVX')


def onednn_isa_cap() -> str:
    """The ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) cap, upper case;
    '' where none is set."""
    return (os.environ.get('ONEDNN_MAX_CPU_ISA')
            or os.environ.get('DNNL_MAX_CPU_ISA') or '').upper()


def _cpu_has(feature: str) -> bool:
    check = getattr(torch.cpu, f'_is_{feature}_supported', None)
    if check is not None:
        return bool(check())
    # Older torch: ATen's dispatch level, which ATEN_CPU_CAPABILITY lowers.
    capability = torch.backends.cpu.get_cpu_capability()
    return capability.startswith('AVX512') or (feature == 'avx2'
                                               and capability == 'AVX2')


def onednn_isa() -> str:
    """'avx512' where oneDNN may run its AVX-512 kernels (the CPU has
    AVX-512 and no cap keeps oneDNN below it), 'avx2' where it runs AVX2 at
    best, 'other' elsewhere (no AVX2, or not an x86 CPU). ATen's own
    ``ATEN_CPU_CAPABILITY`` does not change oneDNN's kernels, so it does not
    count."""
    cap = onednn_isa_cap()
    if _cpu_has('avx512') and cap not in _CAPS_BELOW_AVX512:
        return 'avx512'
    if _cpu_has('avx2') and cap not in _CAPS_BELOW_AVX2:
        return 'avx2'
    return 'other'
