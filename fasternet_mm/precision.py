"""Mixed precision (amp) by parts: ``use_amp(model)`` runs the backbone,
neck and heads under bf16 (or fp16) autocast, while the heads' predictor
layers, RoIAlign, NMS and the other post-processing stay in fp32;
``use_fp32`` undoes it. Forward hooks do the work, so state-dict keys never
change. ``configure_amp(cfg)`` picks a training config's mixed precision by
device (``tools/train.py --amp``). On a CPU without native bf16 both refuse
bf16 (:func:`native_bf16` decides): emulated, it runs about 10x slower than
fp32.
"""
import os
import re
from typing import List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.device import get_device
from torch import nn

from .cpu_isa import onednn_isa_cap
from .deprecation import deprecated_name
from .errors import PreflightError

# Where MMEngine's AmpOptimWrapper (fp16 with a loss scaler) runs.
AMP_OPTIM_WRAPPER_DEVICES = ('cuda', 'npu', 'mlu', 'musa')

# Set to 1, it lets the tools run bf16 on a CPU that only emulates it, as
# allow_emulated=True lets use_amp: for numerics, not for speed.
ALLOW_EMULATED_BF16 = 'FASTERNET_MM_ALLOW_EMULATED_BF16'

# oneDNN's instruction-set caps (ONEDNN_MAX_CPU_ISA) below its bf16 kernels:
# under them oneDNN emulates bf16 whatever the CPU has.
_ISA_WITHOUT_BF16 = ('SSE41', 'AVX', 'AVX2', 'AVX2_VNNI', 'AVX2_VNNI_2',
                     'AVX512_CORE', 'AVX512_CORE_VNNI')


def native_bf16(device: str = 'cpu') -> bool:
    """Whether bf16 runs natively on ``device``: on a CPU, only with
    AVX512-BF16 or AMX that oneDNN may use; elsewhere (CUDA, NPU, ...) the
    device's own bf16 is taken as native."""
    if device != 'cpu':
        return True
    if onednn_isa_cap() in _ISA_WITHOUT_BF16:
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def check_native_bf16(device: str, allow_emulated: bool = False) -> None:
    """Refuse bf16 on ``device`` where it is emulated (see
    :func:`native_bf16`), unless ``allow_emulated`` or the
    ``FASTERNET_MM_ALLOW_EMULATED_BF16=1`` environment variable says to.

    Raises:
        PreflightError: In one line, naming the reason and the ways on.
    """
    if allow_emulated or os.environ.get(ALLOW_EMULATED_BF16) == '1' or \
            native_bf16(device):
        return
    raise PreflightError(
        'bf16 refused: this CPU has no native bf16 (AVX512-BF16 or AMX), '
        'and emulated bf16 runs about 10x slower than fp32; run in fp32, '
        'or, to test bf16 numerics, pass allow_emulated=True to '
        f'use_amp (for the tools: {ALLOW_EMULATED_BF16}=1)')


def _to_float(outputs):
    """Cast the low-precision tensors in nested outputs back to fp32."""
    if isinstance(outputs, torch.Tensor):
        low = (torch.bfloat16, torch.float16)
        return outputs.float() if outputs.dtype in low else outputs
    if isinstance(outputs, (list, tuple)):
        cast = [_to_float(o) for o in outputs]
        if hasattr(outputs, '_fields'):  # a namedtuple
            return type(outputs)(*cast)
        return type(outputs)(cast)
    if isinstance(outputs, dict):
        return type(outputs)((k, _to_float(v)) for k, v in outputs.items())
    return outputs


class _Precision:
    """Forward pre-hook and hook that run a module under autocast to
    ``dtype``, or, for ``dtype=None``, in fp32 with autocast off; either
    way the module hands fp32 outputs on."""

    def __init__(self, dtype: Optional[torch.dtype]) -> None:
        self.dtype = dtype
        self.contexts: List[torch.autocast] = []

    def enter(self, module: nn.Module, args):
        param = next(module.parameters(), None)
        device = param.device.type if param is not None else 'cpu'
        if self.dtype is None:
            context = torch.autocast(device, enabled=False)
        else:
            context = torch.autocast(device, dtype=self.dtype)
        context.__enter__()
        self.contexts.append(context)
        return _to_float(args) if self.dtype is None else None

    def exit(self, module: nn.Module, args, outputs):
        self.contexts.pop().__exit__(None, None, None)
        return _to_float(outputs)

    def attach(self, module: nn.Module) -> None:
        pre = module.register_forward_pre_hook(self.enter)
        post = module.register_forward_hook(self.exit, always_call=True)
        handles = module.__dict__.get('_fasternet_precision', ())
        module._fasternet_precision = handles + (pre, post)


# mmdet's and mmseg's names for the layers that make a head's predictions:
# fc_cls, rpn_reg, retina_cls, conv_centerness, conv_logits, conv_seg, ...
_PREDICTOR = re.compile(r'(^|_)(cls|reg|logits|seg|centerness|obj)$')


def predictor_layers(model: nn.Module, parts: Sequence[str]) -> List[str]:
    """The convs and linears inside ``parts`` that make a head's
    predictions (by mmdet's and mmseg's naming, a list of them counting as
    its members). :func:`use_amp` keeps them in fp32: they are a
    sliver of the work, and in bf16 they cost box AP (demo: 0.690 against
    0.696)."""
    names = dict(model.named_modules())
    layers = []
    for part in parts:
        prefix = part + '.' if part else ''
        for name, module in names.items():
            if not name.startswith(prefix) or not isinstance(
                    module, (nn.Conv2d, nn.Linear)):
                continue
            words = name.split('.')
            owner = words[-2] if words[-1].isdigit() and len(
                words) > 1 else words[-1]
            if _PREDICTOR.search(owner):
                layers.append(name)
    return layers


def amp_parts(model: nn.Module) -> List[str]:
    """The parts of a detector or segmentor that :func:`use_amp` runs in
    low precision by default: the backbone, the neck and every
    innermost ``*_head`` (a list of heads counts as its members), never the
    RoI extractors or the post-processing."""
    names = dict(model.named_modules())
    parts = []
    for name, module in names.items():
        last = name.rsplit('.', 1)[-1]
        parent = name.rsplit('.', 1)[0] if '.' in name else ''
        in_list = isinstance(names.get(parent), (nn.ModuleList, nn.ModuleDict))
        if isinstance(module, (nn.ModuleList, nn.ModuleDict)):
            continue
        is_part = last in ('backbone', 'neck') or last.endswith('_head') or (
            in_list and parent.rsplit('.', 1)[-1].endswith('_head'))
        if not is_part:
            continue
        inner = [
            n for n in names
            if n.startswith(name +
                            '.') and n.rsplit('.', 1)[-1].endswith('_head')
        ]
        if not inner:
            parts.append(name)
    return parts


def use_amp(model: nn.Module,
            parts: Optional[Sequence[str]] = None,
            dtype: torch.dtype = torch.bfloat16,
            fp32_layers: Optional[Sequence[str]] = None,
            allow_emulated: bool = False) -> List[str]:
    """Run parts of ``model`` under autocast to ``dtype``, in place; each
    part hands fp32 outputs on, so RoIAlign, NMS and the other
    post-processing stay in fp32.

    Args:
        model (nn.Module): A detector, segmentor or backbone.
        parts (Sequence[str], optional): Dotted submodule names; ``''`` is
            the model itself. Defaults to :func:`amp_parts`.
        dtype (torch.dtype): ``torch.bfloat16`` (CPU or GPU) or
            ``torch.float16`` (GPU).
        fp32_layers (Sequence[str], optional): Submodules inside the parts
            that stay fp32. Defaults to :func:`predictor_layers`.
        allow_emulated (bool): Run bf16 on a CPU without native bf16,
            where it is about 10x slower than fp32: for numerics tests.
            Defaults to False, which refuses it.

    Returns:
        list[str]: The parts that now run in low precision. Calling
        :func:`use_fp32` undoes it.

    Raises:
        PreflightError: For bf16 on a CPU without native bf16, unless
            ``allow_emulated``.
    """
    if dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f'dtype must be torch.bfloat16 or torch.float16, '
                         f'got {dtype}')
    if dtype == torch.bfloat16:
        param = next(model.parameters(), None)
        check_native_bf16(param.device.type if param is not None else 'cpu',
                          allow_emulated)
    parts = amp_parts(model) if parts is None else list(parts)
    if fp32_layers is None:
        fp32_layers = predictor_layers(model, parts)
    modules = dict(model.named_modules())
    missing = [p for p in [*parts, *fp32_layers] if p not in modules]
    if missing:
        raise ValueError(f'no submodules named {missing} in '
                         f'{type(model).__name__}')
    use_fp32(model)
    for name in parts:
        _Precision(dtype).attach(modules[name])
    for name in fp32_layers:
        _Precision(None).attach(modules[name])
    return parts


def use_fp32(model: nn.Module) -> nn.Module:
    """Undo :func:`use_amp`."""
    for module in model.modules():
        for handle in module.__dict__.pop('_fasternet_precision', ()):
            handle.remove()
    return model


def configure_amp(cfg: Config) -> None:
    """Mixed-precision training for ``cfg``, in place, by the device it
    will train on: MMEngine's fp16 ``AmpOptimWrapper`` with a dynamic loss
    scale where it runs (CUDA, NPU, MLU, MUSA), bf16 autocast by parts
    (``AmpTrainingHook``, :func:`use_amp`) on a CPU with native
    bf16.

    Raises:
        PreflightError: Elsewhere, naming the device and what is missing.
    """
    device = get_device()
    if device in AMP_OPTIM_WRAPPER_DEVICES:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    elif device == 'cpu' and native_bf16(device):
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='fasternet_mm.AmpTrainingHook')
        ]
    else:
        what = 'this CPU has no native bf16 (AVX512-BF16 or AMX)' \
            if device == 'cpu' else f'MMEngine has no mixed precision on ' \
            f'{device!r}'
        raise PreflightError(f'--amp: {what}; train without --amp')


def use_low_precision(*args, **kwargs) -> List[str]:
    """Deprecated name of :func:`use_amp`."""
    deprecated_name('use_low_precision', 'use_amp')
    return use_amp(*args, **kwargs)


def low_precision_parts(model: nn.Module) -> List[str]:
    """Deprecated name of :func:`amp_parts`."""
    deprecated_name('low_precision_parts', 'amp_parts')
    return amp_parts(model)
