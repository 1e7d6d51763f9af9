"""FasterNetCSPLayer and FasterNetPAFPN: structure, errors, deploy form."""
import copy

import pytest
import torch
from helpers import randomize_norms
from torch import nn

import fasternet_mm
from fasternet_mm.models import (FasterNetBlock, FasterNetCSPLayer,
                                 FasterNetPAFPN, PartialConvPointwise)

WIDTHS = [24, 48, 96]


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
