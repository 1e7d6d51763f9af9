"""The backbone on the CPU at batch 1: our training form and deploy form
against timm's ``fasternet_*`` with the same weights and mmdet's
ResNet-50, in fp32 and under bf16 autocast; a training step against timm;
and the machine's fp32 roofline that the deploy form's rate is measured
against."""
import copy
import warnings
from typing import Optional, Sequence

import torch
from mmengine.logging import print_log

from ..complexity import count_macs, count_parameters
from ..cpu_isa import onednn_isa
from ..deploy import switch_to_deploy
from ..deprecation import deprecated_alias
from ..testing import relative_error, timm_features, timm_peer
from .timing import (autocast_run, conv_gflops, gemm_gflops,
                     interleaved_medians, nominal_peak_gflops,
                     saved_activation_bytes)


def roofline_section(report: dict, arch: str, bf16: bool = True) -> None:
    """This machine's fp32 roofline: the best rate of two probes, oneDNN's
    1x1 conv at a saturating shape and the fp32 GEMM (``torch.mm``), next
    to the nominal FMA peak of its cores; with ``bf16`` also the bf16
    GEMM rate. Under ``report['roofline']``, with the oneDNN ISA class and
    the thread count."""
    isa = onednn_isa()
    threads = torch.get_num_threads()
    probes = dict(
        conv=conv_gflops(), gemm=gemm_gflops(torch.float32, (2048, 3072)))
    report.update(
        threads=threads,
        roofline=dict(
            onednn_isa=isa,
            gflops_per_s=probes,
            best_gflops_per_s=max(probes.values()),
            nominal_peak_gflops_per_s=nominal_peak_gflops(isa, threads)))
    line = (f'FasterNet-{arch.upper()}, {threads} threads, oneDNN ISA '
            f"{isa}; fp32 roofline: oneDNN 1x1 conv {probes['conv']:.0f} "
            f"GFLOP/s, torch.mm GEMM {probes['gemm']:.0f} GFLOP/s")
    peak = report['roofline']['nominal_peak_gflops_per_s']
    if peak:
        line += (f'; nominal FMA peak {peak:.0f} GFLOP/s (2 FMA units per '
                 'core at the reported clock)')
    if bf16:
        rate = gemm_gflops(torch.bfloat16)
        report['roofline']['bf16_gemm_gflops_per_s'] = rate
        line += f'; bf16 GEMM {rate:.0f} GFLOP/s'
    print_log(line)


def gemm_section(*args, **kwargs) -> None:
    """Deprecated name of :func:`roofline_section`."""
    warnings.warn(
        'gemm_section is deprecated; use roofline_section',
        DeprecationWarning,
        stacklevel=2)
    roofline_section(*args, **kwargs)


def backbone_section(report: dict,
                     arch: str,
                     shape: Sequence[int],
                     roofline: Optional[float] = None,
                     repeats: int = 5,
                     bf16: bool = True,
                     gemm: Optional[float] = None) -> None:
    """Latency of the backbones at ``shape`` (with ``bf16``, also under
    bf16 autocast), their ratios over timm in fp32 and the errors against
    timm, under ``report['backbone'][HxW]``; ``roofline`` is the fp32 rate
    (GFLOP/s, :func:`roofline_section`) the deploy form's rate is a
    fraction of; ``gemm`` is its deprecated name."""
    roofline = deprecated_alias('backbone_section', 'gemm', gemm, 'roofline',
                                roofline)
    if roofline is None:
        raise TypeError('backbone_section needs the roofline rate (GFLOP/s)')
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
        deploy_fraction_of_roofline=achieved / roofline,
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
              f'{achieved / roofline:.0%} of the fp32 roofline')
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
