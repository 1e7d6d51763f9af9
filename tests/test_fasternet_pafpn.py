"""FasterNetCSPLayer and FasterNetPAFPN: structure, errors, deploy form."""
import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import randomize_norms
from torch import nn

import fasternet_mm
from fasternet_mm.models import (FasterNetBlock, FasterNetCSPLayer,
                                 FasterNetPAFPN, PartialConvPointwise)
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
        act_cfg=dict(type='ReLU')).eval()
    assert len(layer.blocks) == 2
    assert all(isinstance(b, FasterNetBlock) for b in layer.blocks)
    assert layer.blocks[0].partial_conv.conv_channels == 24 // 4
    assert layer.main_conv.conv.out_channels == 24
    assert layer.final_conv.conv.in_channels == 48
    assert layer(torch.rand(2, 32, 97, 131)).shape == (2, 48, 97, 131)


def test_csp_layer_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r'out_channels=4, expand_ratio=0.5 '
                       r'and n_div=4'):
        FasterNetCSPLayer(8, 4, n_div=4)
    with pytest.raises(ValueError, match=r'num_blocks must be an int >= 1, '
                       r'got 0'):
        FasterNetCSPLayer(8, 16, num_blocks=0)


def test_pafpn_follows_the_pconv_rules():
    neck = FasterNetPAFPN(WIDTHS, 32)
    # PConv + pointwise for the 3x3 output convs, regular stride-2 convs
    # for downsampling, plain 1x1 convs for channel changes.
    assert all(
        isinstance(conv.conv, PartialConvPointwise)
        for conv in neck.out_convs)
    assert all(
        type(down.conv) is nn.Conv2d and down.conv.stride == (2, 2)
        for down in neck.downsamples)
    assert all(r.conv.kernel_size == (1, 1) for r in neck.reduce_layers)
    assert len(neck.top_down_blocks) == len(neck.bottom_up_blocks) == 2


def test_pafpn_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r'at least 2 input levels, got '
                       r'in_channels=\[24\]'):
        FasterNetPAFPN([24], 32)
    neck = FasterNetPAFPN(WIDTHS, 32)
    with pytest.raises(ValueError, match=r'built for 3 levels .* got 2'):
        neck(feats()[:2])


def test_pafpn_trains_and_deploys_to_the_same_outputs():
    torch.manual_seed(0)
    neck = FasterNetPAFPN(WIDTHS, 32, num_csp_blocks=2)
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
def ref_conv(module, x, stride=1, padding=0):
    """ConvModule: conv, BN, SiLU. A PConv's 3x3 conv comes first."""
    conv = module.conv
    if isinstance(conv, PartialConvPointwise):
        x = ref_partial_conv(conv.partial_conv.conv.weight, x)
        conv = conv.pointwise
    x = F.conv2d(x, conv.weight, conv.bias, stride, padding)
    return F.silu(ref_bn(module.norm, x))


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


def ref_csp_layer(layer, x):
    """Two 1x1 convs split the input; the main path runs the blocks; the
    final 1x1 conv fuses (main, short)."""
    main = ref_conv(layer.main_conv, x)
    for block in layer.blocks:
        main = ref_block(block, main)
    short = ref_conv(layer.short_conv, x)
    return ref_conv(layer.final_conv, torch.cat((main, short), 1))


def ref_pafpn(neck, inputs):
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
                               torch.cat((upsampled, inputs[-2 - i]), 1))
    outs = [coarse]
    for i in range(levels - 1):
        down = ref_conv(neck.downsamples[i], outs[-1], stride=2, padding=1)
        outs.append(
            ref_csp_layer(neck.bottom_up_blocks[i],
                          torch.cat((down, reduced[i]), 1)))
    # The output convs are PConvs then 1x1 convs.
    return [ref_conv(conv, out) for conv, out in zip(neck.out_convs, outs)]


def test_csp_layer_equals_its_design():
    torch.manual_seed(0)
    layer = randomize_norms(FasterNetCSPLayer(16, 24, num_blocks=2))
    x = torch.randn(2, 16, 13, 17)
    with torch.no_grad():
        error = relative_error([layer(x)], [ref_csp_layer(layer, x)])
    # Same operations in the same order (measured: 0).
    assert error <= 1e-5, error


def test_pafpn_equals_its_design():
    torch.manual_seed(0)
    neck = randomize_norms(FasterNetPAFPN(WIDTHS, 32))
    inputs = [x * 2 - 1 for x in feats(size=(32, 48))]
    with torch.no_grad():
        outputs = neck(inputs)
        reference = ref_pafpn(neck, inputs)
    assert [o.shape for o in outputs] == [r.shape for r in reference]
    error = relative_error(outputs, reference)
    # Same operations in the same order (measured: 0).
    assert error <= 1e-5, error
