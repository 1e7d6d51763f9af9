import inspect

import pytest
import torch
from helpers import TINY_ARCH
from torch.nn.modules.batchnorm import _BatchNorm

from fasternet_mm import FasterNet, PartialConv
from fasternet_mm.benchmark import saved_activation_bytes
from fasternet_mm.complexity import count_parameters
from fasternet_mm.models import FasterNetBlock

ODD_SIZE = (97, 131)
# The paper's counts of the released models: backbone plus ImageNet head.
PAPER_PARAMS_M = {
    't0': 3.9,
    't1': 7.6,
    't2': 15.0,
    's': 31.1,
    'm': 53.5,
    'l': 93.4
}


@pytest.mark.parametrize('arch', list(FasterNet.arch_settings))
def test_output_shapes_at_odd_size(arch):
    model = FasterNet(arch=arch).eval()
    embed_dim = FasterNet.arch_settings[arch]['embed_dim']
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *ODD_SIZE))
    assert isinstance(outs, tuple) and len(outs) == 4
    for i, out in enumerate(outs):
        stride = 4 * 2**i
        assert out.shape == (1, embed_dim * 2**i, ODD_SIZE[0] // stride,
                             ODD_SIZE[1] // stride)
    assert model.out_channels == tuple(embed_dim * 2**i for i in range(4))


@pytest.mark.parametrize('arch', list(PAPER_PARAMS_M))
def test_parameter_counts_match_paper(arch):
    model = FasterNet(arch=arch, out_norm=False)
    # AdaptiveAvgPool, bias-free 1x1 conv to 1280, act, Linear to 1000.
    head = model.channels[-1] * 1280 + 1280 * 1000 + 1000
    conv = sum(m.weight.numel() for m in model.modules()
               if isinstance(m, torch.nn.Conv2d))
    norm = count_parameters(model) - conv
    # The paper's figures are the conv and linear weights: they leave out
    # the BN affine parameters (0.01M for T0 to 0.09M for L).
    assert round((conv + head) / 1e6, 1) == PAPER_PARAMS_M[arch]
    assert 0 < norm / 1e6 < 0.1


@pytest.mark.parametrize('arch', list(FasterNet.arch_settings))
def test_arch_settings_match_timm(arch):
    """timm's fasternet_* models, built by code nobody here wrote, are the
    oracle for widths, depths, MLP ratio, PConv share, activation and
    drop-path rate."""
    timm = pytest.importorskip('timm')
    with torch.device('meta'):  # structure only: no weights to initialise
        peer = timm.create_model(f'fasternet_{arch}', pretrained=False)
    ours = FasterNet.parse_arch(arch)
    assert ours['embed_dim'] == peer.patch_embed.proj.out_channels
    assert ours['depths'] == tuple(len(s.blocks) for s in peer.stages)
    block = peer.stages[0].blocks[0]
    assert ours['n_div'] == (block.mlp[0].in_channels //
                             block.spatial_mixing.partial_conv3.in_channels)
    assert ours['mlp_ratio'] == block.mlp[0].out_channels // \
        block.mlp[0].in_channels
    assert ours['act_cfg']['type'] == block.mlp[2].__class__.__name__
    last = peer.stages[-1].blocks[-1].drop_path
    rate = getattr(last, 'drop_prob', 0.0)  # nn.Identity for rate 0
    assert ours['drop_path_rate'] == pytest.approx(rate)


def test_structure_has_no_conv_bias_and_quarter_pconv():
    model = FasterNet(arch='t0')
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.bias is None for c in convs)
    assert model.patch_embed.conv.kernel_size == (4, 4)
    assert model.patch_embed.conv.stride == (4, 4)
    for i in range(1, 4):
        assert model.stages[i].downsample.conv.kernel_size == (2, 2)
    assert model.stages[0].downsample is None
    block = model.stages[0].blocks[0]
    assert block.partial_conv.conv.in_channels == 40 // 4
    assert block.expand.out_channels == 80
    assert isinstance(block.norm, torch.nn.BatchNorm2d)
    assert isinstance(block.act, torch.nn.GELU)


def test_drop_path_grows_linearly_to_the_rate():
    model = FasterNet(arch='s', drop_path_rate=0.15)
    rates = [b.drop_path_rate for s in model.stages for b in s.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.15)
    assert rates == sorted(rates)


def test_out_indices_int_negative_and_not_mutated():
    indices = [-1, 1]
    model = FasterNet(arch=TINY_ARCH, out_indices=indices).eval()
    assert indices == [-1, 1]
    assert model.out_indices == (1, 3)
    assert hasattr(model, 'norm1') and hasattr(model, 'norm3')
    assert not hasattr(model, 'norm0')
    outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 128]
    single = FasterNet(arch=TINY_ARCH, out_indices=2).eval()
    assert [o.shape[1] for o in single(torch.rand(1, 3, 64, 64))] == [64]


def test_out_norm_off_returns_raw_stage_outputs():
    model = FasterNet(arch=TINY_ARCH, out_norm=False).eval()
    assert not any(
        name.startswith('norm') for name, _ in model.named_children())
    x = torch.rand(1, 3, 64, 64)
    raw = model.stages[0](model.patch_embed(x))
    assert torch.equal(model(x)[0], raw)


@pytest.mark.parametrize('frozen_stages', [0, 1, 2, 4])
def test_frozen_stages(frozen_stages):
    model = FasterNet(arch=TINY_ARCH, frozen_stages=frozen_stages)
    model.train()
    assert not model.patch_embed.training
    assert all(not p.requires_grad for p in model.patch_embed.parameters())
    for i, stage in enumerate(model.stages):
        frozen = i < frozen_stages
        assert stage.training != frozen
        assert all(p.requires_grad != frozen for p in stage.parameters())
        norm = getattr(model, f'norm{i}')
        assert all(p.requires_grad != frozen for p in norm.parameters())


def test_frozen_stages_minus_one_freezes_nothing():
    model = FasterNet(arch=TINY_ARCH, frozen_stages=-1).train()
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())


def test_norm_eval_keeps_batchnorm_statistics():
    model = FasterNet(arch=TINY_ARCH, norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    before = bns[0].running_mean.clone()
    model(torch.rand(2, 3, 64, 64))
    assert torch.equal(bns[0].running_mean, before)
    # Other modules still train (drop path is active).
    assert model.stages[0].training


def test_norm_eval_covers_sync_batchnorm():
    model = FasterNet(
        arch=TINY_ARCH, norm_cfg=dict(type='SyncBN'), norm_eval=True).train()
    sync_bns = [
        m for m in model.modules() if isinstance(m, torch.nn.SyncBatchNorm)
    ]
    # Patch embedding, 3 merges, 5 blocks, 4 output norms.
    assert len(sync_bns) == 13
    assert all(not m.training for m in sync_bns)
    assert model.stages[0].training


@pytest.mark.parametrize('norm_cfg', [
    dict(type='SyncBN', requires_grad=True),
    dict(type='GN', num_groups=4, requires_grad=True),
])
def test_other_norms_build(norm_cfg):
    model = FasterNet(arch=TINY_ARCH, norm_cfg=norm_cfg)
    expected = {
        'SyncBN': torch.nn.SyncBatchNorm,
        'GN': torch.nn.GroupNorm
    }[norm_cfg['type']]
    assert isinstance(model.patch_embed.norm, expected)
    assert isinstance(model.stages[1].blocks[0].norm, expected)
    assert isinstance(model.norm3, expected)
    if norm_cfg['type'] == 'GN':
        outs = model.eval()(torch.rand(1, 3, 64, 64))
        assert outs[-1].shape == (1, 128, 2, 2)


def test_with_cp_gives_same_gradients_and_keeps_fewer_activations():
    torch.manual_seed(0)
    arch = dict(TINY_ARCH, drop_path_rate=0.0)
    plain = FasterNet(arch=arch).train()
    checkpointed = FasterNet(arch=arch, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 64, 96, requires_grad=True)
    grads, kept = [], []
    for model in (plain, checkpointed):
        model.zero_grad()
        outs = []
        kept.append(saved_activation_bytes(lambda: outs.extend(model(x))))
        sum(o.square().mean() for o in outs).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    # Checkpointing keeps each block's input instead of its MLP's 2C-wide
    # activations: measured 0.4x here; without it, 1.0x.
    assert kept[1] < 0.6 * kept[0], kept


def test_partial_conv_forms_agree_and_do_not_mutate_input():
    torch.manual_seed(0)
    pconv = PartialConv(32, n_div=4)
    x = torch.randn(2, 32, 13, 17)
    x_copy = x.clone()
    outputs = {}
    for form in PartialConv.forward_types:
        pconv.forward_type = form
        outputs[form] = pconv(x)
        assert torch.equal(x, x_copy), f'{form} mutated its input'
    torch.testing.assert_close(
        outputs['split_cat'], outputs['slicing'], rtol=0, atol=0)
    # The untouched channels really are untouched.
    assert torch.equal(outputs['slicing'][:, 8:], x[:, 8:])


def test_block_residual_uses_the_unmodified_input():
    torch.manual_seed(0)
    block = FasterNetBlock(
        16,
        n_div=4,
        mlp_ratio=2,
        drop_path_rate=0,
        norm_cfg=dict(type='BN'),
        act_cfg=dict(type='ReLU')).eval()
    # Zero the MLP: the block must then be the identity, whatever PConv does.
    # Compare with a copy taken before the call: a PConv that writes into
    # its input would change x and the output alike.
    torch.nn.init.zeros_(block.project.weight)
    x = torch.randn(1, 16, 9, 9)
    before = x.clone()
    for form in PartialConv.forward_types:
        block.partial_conv.forward_type = form
        assert torch.equal(block(x), before), form
        assert torch.equal(x, before), form


def test_partial_conv_rejects_unknown_form():
    with pytest.raises(ValueError, match='split_cat'):
        PartialConv(16, 4, forward_type='fast')


@pytest.mark.parametrize('kwargs, error, pattern', [
    (dict(arch='xl'), ValueError, r"'xl'.*\['l', 'm', 's', 't0', 't1'"),
    (dict(arch=3), TypeError, 'arch must be a str or a dict'),
    (dict(arch=dict(embed_dim=16)), ValueError, 'missing the keys'),
    (dict(arch=dict(TINY_ARCH, width=3)), ValueError, "unknown keys.*width"),
    (dict(arch=dict(TINY_ARCH, embed_dim=0)), ValueError, 'embed_dim.*0'),
    (dict(arch=dict(TINY_ARCH, depths=(1, 0, 1, 1))), ValueError,
     r'depths.*\(1, 0, 1, 1\)'),
    (dict(arch=dict(TINY_ARCH, depths=(1, 1, 1))), ValueError, 'depths'),
    (dict(arch=dict(TINY_ARCH, n_div=0)), ValueError, 'n_div.*0'),
    (dict(arch=dict(TINY_ARCH, mlp_ratio=-1)), ValueError, 'mlp_ratio.*-1'),
    (dict(arch=TINY_ARCH,
          drop_path_rate=1.5), ValueError, r'drop_path_rate.*1\.5'),
    (dict(arch=TINY_ARCH,
          out_indices=(0, 4)), ValueError, r'out_indices.*\[-4, 3\].*4'),
    (dict(arch=TINY_ARCH, out_indices=(1, -3)), ValueError, 'more than once'),
    (dict(arch=TINY_ARCH, out_indices=()), TypeError, 'out_indices'),
    (dict(arch=TINY_ARCH,
          frozen_stages=5), ValueError, r'frozen_stages.*\[-1, 4\].*5'),
    (dict(arch=TINY_ARCH, frozen_stages=-2), ValueError, 'frozen_stages'),
    (dict(arch=TINY_ARCH, in_channels=0), ValueError, 'in_channels'),
])
def test_bad_arguments_are_named(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        FasterNet(**kwargs)


def test_arch_dict_overrides():
    model = FasterNet(
        arch=dict(TINY_ARCH), act_cfg=dict(type='ReLU'), drop_path_rate=0.0)
    assert isinstance(model.stages[0].blocks[0].act, torch.nn.ReLU)
    assert model.arch['drop_path_rate'] == 0.0


@pytest.mark.parametrize('x, pattern', [
    (torch.rand(3, 64, 64), '4-D'),
    (torch.rand(1, 1, 64, 64), 'in_channels=3.*1 channels'),
    (torch.rand(1, 3, 31, 64), r'at least 32x32.*\(31, 64\)'),
])
def test_bad_inputs_are_named(x, pattern):
    model = FasterNet(arch=TINY_ARCH).eval()
    with pytest.raises(ValueError, match=pattern):
        model(x)


def test_nan_input_propagates():
    model = FasterNet(arch=TINY_ARCH).eval()
    x = torch.rand(1, 3, 64, 64)
    x[0, 0, 0, 0] = float('nan')
    outs = model(x)
    assert torch.isnan(outs[0]).any()


def test_other_in_channels():
    model = FasterNet(arch=TINY_ARCH, in_channels=1).eval()
    assert model(torch.rand(1, 1, 64, 64))[0].shape == (1, 16, 16, 16)


def test_default_init_is_truncated_normal():
    torch.manual_seed(0)
    model = FasterNet(arch='t0')
    model.init_weights()
    weight = model.stages[2].blocks[0].expand.weight
    assert weight.std().item() == pytest.approx(0.02, rel=0.2)


def test_drop_path_drops_whole_samples_and_keeps_the_mean():
    torch.manual_seed(0)
    block = FasterNetBlock(
        8,
        n_div=4,
        mlp_ratio=2,
        drop_path_rate=0.5,
        norm_cfg=dict(type='BN'),
        act_cfg=dict(type='ReLU')).train()
    x = torch.randn(4000, 8, 3, 3)
    residual = block._residual(x).detach()
    with torch.no_grad():
        torch.manual_seed(1)
        out = block(x)
    # Each sample gets either x (dropped) or x + 2 * residual (kept).
    kept = (out - x).flatten(1).abs().sum(1) > 0
    torch.testing.assert_close((out - x)[kept], 2 * residual[kept])
    assert 0.45 < kept.float().mean().item() < 0.55
    block.eval()
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + block._residual(x))


def test_arguments_in_mmdet_order():
    """Architecture, input, structure, outputs, freezing, norm and
    activation configs, norm_eval, with_cp, init_cfg: the order of mmdet's
    backbones, which a positional call relies on."""
    assert list(inspect.signature(FasterNet).parameters) == [
        'arch', 'in_channels', 'drop_path_rate', 'out_indices', 'out_norm',
        'frozen_stages', 'norm_cfg', 'act_cfg', 'norm_eval', 'with_cp',
        'init_cfg'
    ]
