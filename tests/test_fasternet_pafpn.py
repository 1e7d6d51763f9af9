"""FasterNetCSPLayer and FasterNetPAFPN: structure, errors, deploy form."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import randomize_norms
from torch import nn

import fasternet_mm
from fasternet_mm.models import (FasterNetBlock, FasterNetCSPLayer,
                                 FasterNetPAFPN, PartialConvPointwise,
                                 PConvNeXtBlock)
from fasternet_mm.testing import relative_error

WIDTHS = [24, 48, 96]
N_DIV = 4


def feats(batch=1, size=(64, 96)):
    return [
        torch.rand(batch, c, size[0] // 2**i, size[1] // 2**i)
        for i, c in enumerate(WIDTHS)
    ]


def test_csp_layer_paths_and_blocks():
    layer = FasterNetCSPLayer(
        32, 48, expand_ratio=0.5, num_blocks=2, n_div=4,
        block_type='fasternet', act_cfg=dict(type='ReLU')).eval()
    assert len(layer.blocks) == 2
    assert all(isinstance(b, FasterNetBlock) for b in layer.blocks)
    assert layer.blocks[0].partial_conv.conv_channels == 24 // 4
    assert layer.main_conv.conv.out_channels == 24
    assert layer.final_conv.conv.in_channels == 48
    assert layer(torch.rand(2, 32, 97, 131)).shape == (2, 48, 97, 131)


def test_pconvnext_block_mixes_space_on_every_channel():
    layer = FasterNetCSPLayer(32, 48, num_blocks=2, n_div=4).eval()
    assert all(isinstance(b, PConvNeXtBlock) for b in layer.blocks)
    block = layer.blocks[0]
    # PConv on a quarter of the channels, then a pointwise conv ...
    assert isinstance(block.conv1.conv, PartialConvPointwise)
    assert block.conv1.conv.partial_conv.conv_channels == 24 // 4
    # ... then a 5x5 depthwise conv on all of them and a pointwise conv.
    depthwise = block.conv2.depthwise_conv.conv
    assert depthwise.kernel_size == (5, 5)
    assert depthwise.groups == depthwise.in_channels == 24
    assert block.conv2.pointwise_conv.conv.kernel_size == (1, 1)
    assert block.add_identity
    x = torch.rand(1, 24, 9, 11)
    with torch.no_grad():
        assert torch.equal(block(x),
                           block.conv2(block.conv1(x)) + x)
    assert layer(torch.rand(2, 32, 13, 17)).shape == (2, 48, 13, 17)


@pytest.mark.parametrize('n_div', [2, 3])
def test_pconvnext_block_takes_its_n_div(n_div):
    """The block's PConv convolves ``in_channels // n_div`` channels and
    passes the rest to the pointwise conv untouched, on its own and inside
    a CSP layer."""
    block = PConvNeXtBlock(24, 24, n_div=n_div).eval()
    pconv = block.conv1.conv.partial_conv
    convolved = 24 // n_div
    assert pconv.conv.in_channels == pconv.conv_channels == convolved
    x = torch.randn(1, 24, 9, 11)
    changed = x.clone()
    changed[:, 0, 4, 5] += 10
    with torch.no_grad():
        reached = (pconv(changed) - pconv(x))[0].flatten(1).abs().amax(1) > 0
    assert reached.tolist() == [True] * convolved + [False] * (24 - convolved)
    layer = FasterNetCSPLayer(32, 48, n_div=n_div)
    assert all(b.conv1.conv.partial_conv.conv_channels == 24 // n_div
               for b in layer.blocks)


def test_csp_layer_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r'out_channels=4, expand_ratio=0.5 '
                       r'and n_div=4'):
        FasterNetCSPLayer(8, 4, n_div=4)
    with pytest.raises(ValueError, match=r'num_blocks must be an int >= 1, '
                       r'got 0'):
        FasterNetCSPLayer(8, 16, num_blocks=0)
    with pytest.raises(ValueError, match=r"block_type must be one of "
                       r"\('pconvnext', 'fasternet'\), got 'dense'"):
        FasterNetCSPLayer(8, 16, block_type='dense')
    with pytest.raises(ValueError, match=r"mlp_ratio, with_cp only apply "
                       r"to block_type='fasternet'"):
        FasterNetCSPLayer(8, 16, mlp_ratio=4, with_cp=True)
    with pytest.raises(ValueError, match=r'add_identity=False needs '):
        FasterNetCSPLayer(8, 16, block_type='fasternet', add_identity=False)
    with pytest.raises(ValueError, match=r'kernel_size must be an odd int, '
                       r'got 4'):
        PConvNeXtBlock(8, 8, kernel_size=4)


def test_pafpn_follows_the_pconv_rules():
    neck = FasterNetPAFPN(WIDTHS, 32)
    # 5x5 depthwise-separable output convs, regular stride-2 convs for
    # downsampling, plain 1x1 convs for channel changes, and no residual
    # in the CSP layers' blocks (as CSPNeXtPAFPN).
    assert all(
        conv.depthwise_conv.conv.kernel_size == (5, 5)
        and conv.depthwise_conv.conv.groups == width
        for conv, width in zip(neck.out_convs, WIDTHS))
    assert not any(
        block.add_identity for csp in neck.bottom_up_blocks
        for block in csp.blocks)
    old = FasterNetPAFPN(WIDTHS, 32, block_type='fasternet', out_conv='pconv')
    assert all(
        isinstance(conv.conv, PartialConvPointwise) for conv in old.out_convs)
    dense = FasterNetPAFPN(WIDTHS, 32, out_conv='dense')
    assert all(
        type(conv.conv) is nn.Conv2d and conv.conv.kernel_size == (3, 3)
        for conv in dense.out_convs)
    assert all(
        type(down.conv) is nn.Conv2d and down.conv.stride == (2, 2)
        for down in neck.downsamples)
    assert all(r.conv.kernel_size == (1, 1) for r in neck.reduce_layers)
    assert len(neck.top_down_blocks) == len(neck.bottom_up_blocks) == 2


def test_pconv_in_the_neck_takes_the_neck_init():
    # The neck's init_cfg (PyTorch's Kaiming-uniform conv init, as mmdet's
    # PAFPN necks) covers every Conv2d, PConv's included: |w| <= 1/sqrt(fan
    # in). A PartialConvPointwise on its own keeps its Kaiming-normal init.
    torch.manual_seed(0)
    neck = FasterNetPAFPN(WIDTHS, 32, block_type='fasternet', out_conv='pconv')
    neck.init_weights()
    pconvs = [m for m in neck.modules() if isinstance(m, PartialConvPointwise)]
    assert len(pconvs) == len(WIDTHS)
    for pconv in pconvs:
        for conv in (pconv.partial_conv.conv, pconv.pointwise):
            bound = 1 / math.sqrt(conv.weight[0].numel())
            assert conv.weight.abs().max() <= bound
    lone = PartialConvPointwise(WIDTHS[0], 32)
    assert lone.pointwise.weight.abs().max() > 1 / math.sqrt(WIDTHS[0])


def test_pafpn_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r'at least 2 input levels, got '
                       r'in_channels=\[24\]'):
        FasterNetPAFPN([24], 32)
    with pytest.raises(ValueError, match=r"out_conv must be one of .*, got "
                       r"'separable'"):
        FasterNetPAFPN(WIDTHS, 32, out_conv='separable')
    neck = FasterNetPAFPN(WIDTHS, 32)
    with pytest.raises(ValueError, match=r'built for 3 levels .* got 2'):
        neck(feats()[:2])


DESIGNS = [
    dict(),
    dict(n_div=2),
    dict(out_conv='dense'),
    dict(block_type='fasternet', out_conv='pconv'),
]


@pytest.mark.parametrize('design', DESIGNS, ids=str)
def test_pafpn_trains_and_deploys_to_the_same_outputs(design):
    torch.manual_seed(0)
    neck = FasterNetPAFPN(WIDTHS, 32, num_csp_blocks=2, **design)
    neck.init_weights()
    loss = sum(out.mean() for out in neck(feats(batch=2)))
    loss.backward()
    assert all(p.grad is not None for p in neck.parameters())
    randomize_norms(neck)
    inputs = feats()
    with torch.no_grad():
        reference = neck(inputs)
        deployed = fasternet_mm.switch_to_deploy(copy.deepcopy(neck))
        outputs = deployed(inputs)
    assert not any(
        isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
    for out, ref in zip(outputs, reference):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(RuntimeError, match='deploy form'):
        deployed.train()
    deployed.switch_to_deploy()  # idempotent
    with torch.no_grad():
        again = deployed(inputs)
    torch.testing.assert_close(again[0], outputs[0])


# A functional reference written from the design, reading only the
# modules' weights and norm statistics: every conv is followed by an
# eval-mode BN and SiLU (the defaults), PConv convolves the first
# channels // 4 channels with a 3x3 kernel.
def ref_conv(module, x, stride=1, padding=0, groups=1):
    """ConvModule: conv, BN, SiLU. A PConv's 3x3 conv comes first."""
    conv = module.conv
    if isinstance(conv, PartialConvPointwise):
        x = ref_partial_conv(conv.partial_conv.conv.weight, x)
        conv = conv.pointwise
    x = F.conv2d(x, conv.weight, conv.bias, stride, padding, 1, groups)
    return F.silu(ref_bn(module.norm, x))


def ref_separable(module, x):
    """5x5 depthwise conv, BN, SiLU, then 1x1 conv, BN, SiLU."""
    x = ref_conv(module.depthwise_conv, x, padding=2, groups=x.shape[1])
    return ref_conv(module.pointwise_conv, x)


def ref_bn(bn, x):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight,
                        bn.bias, False, 0.0, bn.eps)


def ref_partial_conv(weight, x):
    part = x.shape[1] // N_DIV
    return torch.cat(
        (F.conv2d(x[:, :part], weight, padding=1), x[:, part:]), 1)


def ref_block(block, x):
    hidden = F.conv2d(ref_partial_conv(block.partial_conv.conv.weight, x),
                      block.expand.weight)
    hidden = F.silu(ref_bn(block.norm, hidden))
    return x + F.conv2d(hidden, block.project.weight)


def ref_pconvnext_block(block, x, add_identity):
    """PConv + 1x1 conv (BN, SiLU), then the depthwise-separable conv."""
    out = ref_separable(block.conv2, ref_conv(block.conv1, x))
    return out + x if add_identity else out


def ref_csp_layer(layer, x, block_type='pconvnext', add_identity=True):
    """Two 1x1 convs split the input; the main path runs the blocks; the
    final 1x1 conv fuses (main, short)."""
    main = ref_conv(layer.main_conv, x)
    for block in layer.blocks:
        if block_type == 'fasternet':
            main = ref_block(block, main)
        else:
            main = ref_pconvnext_block(block, main, add_identity)
    short = ref_conv(layer.short_conv, x)
    return ref_conv(layer.final_conv, torch.cat((main, short), 1))


def ref_pafpn(neck, inputs, block_type='pconvnext', out_conv='depthwise'):
    """Top-down from the coarsest level (reduce, upsample, concatenate with
    the finer input, CSP), then bottom-up from the finest top-down result
    (downsample, concatenate with the reduced map of that level, CSP), then
    one output conv per level."""
    levels = len(inputs)
    coarse, reduced = inputs[-1], []
    for i in range(levels - 1):
        coarse = ref_conv(neck.reduce_layers[i], coarse)
        reduced.insert(0, coarse)
        upsampled = F.interpolate(coarse, scale_factor=2, mode='nearest')
        coarse = ref_csp_layer(neck.top_down_blocks[i],
                               torch.cat((upsampled, inputs[-2 - i]), 1),
                               block_type, False)
    outs = [coarse]
    for i in range(levels - 1):
        down = ref_conv(neck.downsamples[i], outs[-1], stride=2, padding=1)
        outs.append(
            ref_csp_layer(neck.bottom_up_blocks[i],
                          torch.cat((down, reduced[i]), 1), block_type,
                          False))
    if out_conv == 'depthwise':
        return [
            ref_separable(conv, out)
            for conv, out in zip(neck.out_convs, outs)
        ]
    # 'pconv': PConv, then a 1x1 conv.
    return [ref_conv(conv, out) for conv, out in zip(neck.out_convs, outs)]


@pytest.mark.parametrize('block_type', ['pconvnext', 'fasternet'])
def test_csp_layer_equals_its_design(block_type):
    torch.manual_seed(0)
    layer = randomize_norms(
        FasterNetCSPLayer(16, 24, num_blocks=2, block_type=block_type))
    x = torch.randn(2, 16, 13, 17)
    with torch.no_grad():
        error = relative_error([layer(x)],
                               [ref_csp_layer(layer, x, block_type)])
    # Same operations in the same order (measured: 0).
    assert error <= 1e-5, error


@pytest.mark.parametrize('block_type,out_conv', [('pconvnext', 'depthwise'),
                                                 ('fasternet', 'pconv')])
def test_pafpn_equals_its_design(block_type, out_conv):
    torch.manual_seed(0)
    neck = randomize_norms(
        FasterNetPAFPN(WIDTHS, 32, block_type=block_type, out_conv=out_conv))
    inputs = [x * 2 - 1 for x in feats(size=(32, 48))]
    with torch.no_grad():
        outputs = neck(inputs)
        reference = ref_pafpn(neck, inputs, block_type, out_conv)
    assert [o.shape for o in outputs] == [r.shape for r in reference]
    error = relative_error(outputs, reference)
    # Same operations in the same order (measured: 0).
    assert error <= 1e-5, error
