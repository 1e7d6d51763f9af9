"""The deploy form: the same function, computed faster.

``fasternet_mm.switch_to_deploy(model)`` folds each BatchNorm that follows a
convolution into that convolution, in every FasterNet inside a detector or
segmentor (``FasterNet.switch_to_deploy()`` does one backbone), and swaps
mmcv's RoIAlign for the equal, faster :class:`GatherRoIAlign`. The folding
itself lives in :mod:`fasternet_mm.models.layers.bn_folding`. Lower
precision, which changes the numbers, lives in :mod:`fasternet_mm.precision`.
"""
from typing import Optional, Union

from torch import nn

from .deprecation import deprecated_alias
from .models import FasterNet


def _swap_roi_align(model: nn.Module) -> None:
    """Put a GatherRoIAlign in place of every average-pooling
    ``mmcv.ops.RoIAlign``."""
    try:
        from mmcv.ops import RoIAlign
    except ImportError:  # mmcv without its compiled ops: nothing to swap
        return
    from .ops import GatherRoIAlign
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (type(child) is RoIAlign and child.pool_mode == 'avg'
                    and not child.use_torchvision):
                setattr(
                    parent, name,
                    GatherRoIAlign(child.output_size, child.spatial_scale,
                                   child.sampling_ratio, child.pool_mode,
                                   child.aligned))


def switch_to_deploy(model: nn.Module,
                     compile: Union[bool, dict] = False,
                     memory_format: Optional[str] = None,
                     layout: Optional[str] = None) -> nn.Module:
    """Switch a backbone, detector or segmentor to its deploy form, in place:
    every submodule with a ``switch_to_deploy`` method (every FasterNet,
    wherever it sits) folds its BNs, and every average-pooling
    ``mmcv.ops.RoIAlign`` becomes a :class:`GatherRoIAlign` (same numbers,
    5-15x faster on CPU). Load weights and move the model to its device
    first: on CUDA the backbone's weights go channels-last.

    Args:
        model (nn.Module): A FasterNet, or any model holding FasterNets.
        compile (bool | dict): Also compile every FasterNet in place with
            ``torch.compile`` (``nn.Module.compile``); a dict gives its
            keyword arguments, e.g. ``dict(mode='max-autotune')``. Only the
            backbones are compiled: heads with NMS and data-dependent shapes
            gain little and recompile often. The first call at each input
            shape pays for the compilation.
        memory_format (str, optional): The memory-format rule of every
            FasterNet's deploy form: ``'channels_last'``,
            ``'channels_last_large'`` or ``'contiguous'``, or ``'cpu'`` /
            ``'cuda'`` for the rule measured fastest there (on a CPU by
            the instruction set oneDNN runs); None picks each one's by the
            device of its weights (``FasterNet.switch_to_deploy``).
        layout (str, optional): Deprecated name of ``memory_format``.

    Returns:
        nn.Module: ``model``, in eval mode.
    """
    memory_format = deprecated_alias('switch_to_deploy', 'layout', layout,
                                     'memory_format', memory_format)
    if not isinstance(compile, (bool, dict)):
        raise TypeError(f'compile must be a bool or a dict of torch.compile '
                        f'arguments, got {compile!r}')
    for module in list(model.modules()):
        if isinstance(module, FasterNet):
            module.switch_to_deploy(memory_format=memory_format)
        elif callable(getattr(module, 'switch_to_deploy', None)):
            module.switch_to_deploy()
    _swap_roi_align(model)
    if compile is not False:
        options = compile if isinstance(compile, dict) else {}
        for module in model.modules():
            if isinstance(module, FasterNet):
                module.compile(**options)
    return model.eval()
