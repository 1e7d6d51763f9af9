"""Helpers shared by the tests."""
import importlib.util
from pathlib import Path

import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, init_default_scope
from torch.nn.modules.batchnorm import _BatchNorm

from fasternet_mm.complexity import dummy_sample

SMALL = (96, 128)
REPO = Path(__file__).resolve().parents[1]


def load_tool(name):
    """``tools/<name>.py`` as a module, to call its ``main(argv)`` in this
    process (much faster than a subprocess)."""
    spec = importlib.util.spec_from_file_location(
        f'{name}_tool', REPO / 'tools' / f'{name}.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def build(cfg):
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None
    return revert_sync_batchnorm(MODELS.build(cfg.model)).eval()


def forward_once(model, scope, size=SMALL):
    sample = dummy_sample(scope, *size)
    with torch.no_grad():
        return model(torch.rand(1, 3, *size), [sample], mode='predict')


def randomize_norms(model):
    """Give every BatchNorm non-trivial statistics and affine parameters,
    so that loading or folding them is visible in the outputs."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator))
            module.running_var.copy_(torch.rand(n, generator=generator) + .5)
            module.weight.data.copy_(torch.randn(n, generator=generator))
            module.bias.data.copy_(torch.randn(n, generator=generator))
    return model.eval()


class Exploit:
    """Creates ``marker`` when unpickled: a checkpoint that runs code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker), ))
