"""The backbone on the CPU at batch 1: our training form and deploy form
against timm's ``fasternet_*`` with the same weights and mmdet's
ResNet-50, in fp32 and under bf16 autocast; a training step against timm;
and the machine's GEMM rate that the deploy form's is measured against."""
import copy
from typing import Sequence

import torch
from mmengine.logging import print_log

from ..complexity import count_macs, count_parameters
from ..deploy import switch_to_deploy
from ..testing import relative_error, timm_features, timm_peer
from .timing import (autocast_run, gemm_gflops, interleaved_medians,
                     saved_activation_bytes)


def gemm_section(report: dict, arch: str, bf16: bool = True) -> None:
    """The fp32 and (with ``bf16``) bf16 matrix-multiply rates of this
    machine, and its thread count, under ``report['gemm_gflops_per_s']``
    and ``report['threads']``."""
    rates = dict(fp32=gemm_gflops(torch.float32))
    if bf16:
        rates['bf16'] = gemm_gflops(torch.bfloat16)
    report.update(threads=torch.get_num_threads(), gemm_gflops_per_s=rates)
    print_log(f'FasterNet-{arch.upper()}, {torch.get_num_threads()} '
              f'threads; GEMM: ' +
              ', '.join(f'{k} {v:.0f} GFLOP/s' for k, v in rates.items()))


def backbone_section(report: dict,
                     arch: str,
                     shape: Sequence[int],
                     gemm: float,
                     repeats: int = 5,
                     bf16: bool = True) -> None:
    """Latency of the backbones at ``shape`` (with ``bf16``, also under
    bf16 autocast), their ratios over timm in fp32 and the errors against
    timm, under ``report['backbone'][HxW]``; ``gemm`` is the fp32 GEMM
    rate (GFLOP/s) the deploy form's rate is a fraction of."""
    peer, ours = timm_peer(arch)
    deployed = switch_to_deploy(copy.deepcopy(ours))
    from mmdet.models.backbones import ResNet
    resnet = ResNet(depth=50)
    resnet.eval()  # mmdet's ResNet.train() returns None
    image = torch.rand(1, 3, *shape)
    peer_run = timm_features(peer)
    cases = {
        'ours': lambda: ours(image),
        'ours_deploy': lambda: deployed(image),
        'timm': lambda: peer_run(image),
        'resnet50': lambda: resnet(image),
    }
    if bf16:
        cases['ours_deploy_bf16'] = autocast_run(cases['ours_deploy'])
        cases['timm_bf16'] = autocast_run(cases['timm'])
    with torch.no_grad():
        seconds = interleaved_medians(cases, repeats)
        reference = peer_run(image)
        errors = {
            'ours_vs_timm': relative_error(ours(image), reference),
            'deploy_vs_timm': relative_error(deployed(image), reference),
        }
        if bf16:
            errors['deploy_bf16_vs_fp32'] = relative_error(
                cases['ours_deploy_bf16'](), deployed(image))
    macs = count_macs(ours, image)
    achieved = 2 * macs / seconds['ours_deploy'] / 1e9
    key = f'{shape[0]}x{shape[1]}'
    report['backbone'][key] = dict(
        ms={
            k: v * 1e3
            for k, v in seconds.items()
        },
        ratio_vs_timm_fp32={
            k: seconds['timm'] / v
            for k, v in seconds.items()
        },
        errors=errors,
        gmacs=macs / 1e9,
        deploy_gflops_per_s=achieved,
        deploy_fraction_of_gemm=achieved / gemm,
        params_m={
            'ours': count_parameters(ours) / 1e6,
            'timm': count_parameters(peer) / 1e6,
            'resnet50': count_parameters(resnet) / 1e6
        })
    print_log(f'\n== backbone, batch 1, {key} ({macs / 1e9:.1f} GMACs) ==')
    for name, value in seconds.items():
        print_log(f'{name:18s} {value * 1e3:9.1f} ms   timm_fp32 / this = '
                  f"{seconds['timm'] / value:5.2f}")
    print_log(f'deploy fp32: {achieved:.0f} GFLOP/s = '
              f'{achieved / gemm:.0%} of the fp32 GEMM rate')
    print_log('max relative error: ' +
              ', '.join(f'{k} {v:.1e}' for k, v in errors.items()))


def train_section(report: dict,
                  arch: str,
                  shape: Sequence[int],
                  repeats: int = 5) -> None:
    """One training step (forward and backward, batch 1) of ours against
    timm, and the activations each keeps for the backward pass, under
    ``report['train_step'][HxW]``."""
    peer, ours = timm_peer(arch)
    peer.train()
    ours.train()
    image = torch.rand(1, 3, *shape)

    def step(run):

        def wrapped():
            sum(f.float().mean() for f in run(image)).backward()

        return wrapped

    runs = {'ours': step(ours), 'timm': step(timm_features(peer))}
    # Two rounds once gave 0.86x where twelve gave 1.00x: steps vary more.
    seconds = interleaved_medians(runs, max(repeats, 4))
    saved = {name: saved_activation_bytes(run) for name, run in runs.items()}
    key = f'{shape[0]}x{shape[1]}'
    report['train_step'][key] = dict(
        ms={
            k: v * 1e3
            for k, v in seconds.items()
        },
        timm_over_ours=seconds['timm'] / seconds['ours'],
        saved_activation_mib={
            k: v / 2**20
            for k, v in saved.items()
        })
    print_log(f'\n== training step (forward + backward), {key} ==')
    print_log(f"ours {seconds['ours'] * 1e3:.0f} ms, timm "
              f"{seconds['timm'] * 1e3:.0f} ms: timm / ours = "
              f"{seconds['timm'] / seconds['ours']:.2f}")
    print_log(f"activations kept for backward: ours "
              f"{saved['ours'] / 2**20:.0f} MiB, timm "
              f"{saved['timm'] / 2**20:.0f} MiB")


def plot_latency_vs_params(report: dict, path: str) -> None:
    """Latency against parameters of each backbone at the last shape of
    ``report['backbone']``, as a PNG at ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    key = list(report['backbone'])[-1]
    entry = report['backbone'][key]
    fig, ax = plt.subplots(figsize=(6, 4))
    params_m = entry['params_m']
    for name, ms in entry['ms'].items():
        owner = 'resnet50' if name.startswith('resnet') else (
            'timm' if name.startswith('timm') else 'ours')
        ax.scatter(params_m[owner], ms, label=name)
    ax.set_xlabel('backbone parameters (M)')
    ax.set_ylabel(f'latency at batch 1, {key} (ms)')
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
