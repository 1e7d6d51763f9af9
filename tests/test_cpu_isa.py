"""Which instruction set oneDNN runs: the CPU's best, capped by
ONEDNN_MAX_CPU_ISA or DNNL_MAX_CPU_ISA."""
import pytest
import torch

from fasternet_mm.cpu_isa import ISA_CLASSES, onednn_isa


@pytest.fixture
def cpu(monkeypatch):
    """Set what the CPU offers and the cap, as ``cpu(features, cap)``."""
    monkeypatch.delenv('ONEDNN_MAX_CPU_ISA', raising=False)
    monkeypatch.delenv('DNNL_MAX_CPU_ISA', raising=False)

    def set_up(features, cap=None, variable='ONEDNN_MAX_CPU_ISA'):
        for feature in ('avx512', 'avx2'):
            monkeypatch.setattr(torch.cpu, f'_is_{feature}_supported',
                                lambda f=feature: f in features)
        if cap is not None:
            monkeypatch.setenv(variable, cap)

    return set_up


@pytest.mark.parametrize('features, cap, variable, expected', [
    (('avx512', 'avx2'), None, None, 'avx512'),
    (('avx512', 'avx2'), 'AVX2', 'ONEDNN_MAX_CPU_ISA', 'avx2'),
    (('avx512', 'avx2'), 'avx2_vnni', 'DNNL_MAX_CPU_ISA', 'avx2'),
    (('avx512', 'avx2'), 'AVX512_CORE_AMX', 'ONEDNN_MAX_CPU_ISA', 'avx512'),
    (('avx512', 'avx2'), 'ALL', 'ONEDNN_MAX_CPU_ISA', 'avx512'),
    (('avx2', ), None, None, 'avx2'),
    (('avx2', ), 'AVX512_CORE', 'ONEDNN_MAX_CPU_ISA', 'avx2'),
    (('avx2', ), 'AVX', 'ONEDNN_MAX_CPU_ISA', 'other'),
    ((), None, None, 'other'),
])
def test_onednn_isa(cpu, features, cap, variable, expected):
    cpu(features, cap, variable)
    assert onednn_isa() == expected


def test_this_machine_has_a_class():
    assert onednn_isa() in ISA_CLASSES
