"""Distributed training on CPU with the gloo backend.

MMEngine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and wraps
models with ``device_ids=[LOCAL_RANK]``, and torch's SyncBatchNorm refuses
CPU tensors; each breaks CPU-only multi-process training. Here the process
group starts with gloo before the Runner (which then leaves it alone), and a
model wrapper swaps SyncBatchNorm for a version that all-reduces its
statistics through ``torch.distributed`` on any device.
"""
import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from torch import nn
from torch.distributed.nn.functional import all_reduce

from .registry import MODEL_WRAPPERS


class AllReduceBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are averaged over all
    processes with a differentiable all-reduce (gloo or any backend)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f'expected at least 2-D input, got '
                             f'{input.dim()}-D')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available()
                and dist.is_initialized() and dist.get_world_size() > 1):
            return F.batch_norm(x, self.running_mean, self.running_var,
                                self.weight, self.bias, self.training
                                or not self.track_running_stats, self.momentum,
                                self.eps)
        channels = x.shape[1]
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, channels] + [1] * (x.dim() - 2)
        count = x.new_tensor([x.numel() / channels])
        # Two passes, mean first, then the squared deviations from it:
        # E[x^2] - E[x]^2 in one pass cancels catastrophically in float32
        # when the mean is large against the spread (e.g. 1000 + N(0, 1)).
        stats = all_reduce(torch.cat([x.sum(dims), count]))
        total = stats[-1]
        mean = stats[:channels] / total
        centered = x - mean.view(shape)
        var = all_reduce(centered.square().sum(dims)) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else \
                    1.0 / float(self.num_batches_tracked)
                unbiased = var * total / (total - 1).clamp(min=1)
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(unbiased, momentum)
        out = centered * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.SyncBatchNorm`` with :class:`AllReduceBatchNorm`,
    keeping its parameters and statistics."""
    if isinstance(module, nn.SyncBatchNorm):
        converted = AllReduceBatchNorm(module.num_features, module.eps,
                                       module.momentum, module.affine,
                                       module.track_running_stats)
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        for param, source in zip(converted.parameters(), module.parameters()):
            param.requires_grad = source.requires_grad
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child))
    return module


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """MMEngine's DDP wrapper for CPU processes: no device ids, and
    SyncBatchNorm that works over gloo."""

    def __init__(self, module: nn.Module, **kwargs) -> None:
        kwargs['device_ids'] = None
        module = convert_sync_batchnorm(module)
        converted = sum(
            isinstance(m, AllReduceBatchNorm) for m in module.modules())
        if converted:
            print_log(
                f'SyncBN on CPU: {converted} layers all-reduce their '
                f'statistics over gloo (AllReduceBatchNorm)',
                logger='current')
        super().__init__(module=module, **kwargs)


def init_cpu_distributed(cfg) -> bool:
    """Start a gloo process group for ``--launcher pytorch`` without CUDA.

    Returns True when it did, after pointing the config's model wrapper at
    :class:`CPUDistributedDataParallel`.
    """
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')  # env:// set by torchrun
    wrapper = cfg.get('model_wrapper_cfg') or {}
    cfg.model_wrapper_cfg = dict(
        wrapper,
        type='fasternet_mm.CPUDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    return True
