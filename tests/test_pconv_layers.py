"""PConv as a conv layer (conv_cfg=dict(type='PConv')) and the registered
building blocks."""
import copy
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import REPO, SMALL, build, randomize_norms
from mmcv.cnn import ConvModule, build_conv_layer
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

import fasternet_mm
from fasternet_mm.complexity import count_complexity
from fasternet_mm.models import (FasterNetBlock, FasterNetCSPLayer,
                                 FasterNetPAFPN, PartialConv,
                                 PartialConvPointwise)

PCONV = dict(type='PConv', n_div=4)
LIBRARIES = ['mmdet', 'mmseg']

# type: (config arguments, input channels per level, expected class)
BLOCKS = {
    'PartialConv': (dict(channels=16), [16], PartialConv),
    'FasterNetBlock': (dict(channels=16), [16], FasterNetBlock),
    'FasterNetCSPLayer':
    (dict(in_channels=16, out_channels=24), [16], FasterNetCSPLayer),
    'FasterNetPAFPN': (dict(in_channels=[16, 32, 64],
                            out_channels=24), [16, 32, 64], FasterNetPAFPN),
}


@pytest.mark.parametrize('library', LIBRARIES)
@pytest.mark.parametrize('prefix', ['', 'fasternet_mm.'])
@pytest.mark.parametrize('name', list(BLOCKS))
def test_blocks_build_from_downstream_registries(library, prefix, name):
    registry = pytest.importorskip(f'{library}.registry').MODELS
    args, channels, cls = BLOCKS[name]
    module = registry.build(dict(type=prefix + name, **args)).eval()
    assert type(module) is cls
    feats = [
        torch.rand(1, c, 64 // 2**i, 96 // 2**i)
        for i, c in enumerate(channels)
    ]
    with torch.no_grad():
        out = module(feats) if len(feats) > 1 else module(feats[0])
    if name == 'FasterNetPAFPN':
        assert [tuple(o.shape) for o in out] == [(1, 24, 64, 96),
                                                 (1, 24, 32, 48),
                                                 (1, 24, 16, 24)]
    else:
        assert out.shape[1] == args.get('out_channels', 16)


@pytest.mark.parametrize('scope', ['mmengine', 'mmdet', 'mmseg'])
def test_conv_layer_builds_in_every_scope(scope):
    pytest.importorskip(scope)
    init_default_scope(scope)
    layer = build_conv_layer(PCONV, 16, 24, 3, stride=1, padding=1)
    assert isinstance(layer, PartialConvPointwise)
    assert layer.partial_conv.conv_channels == 4


def test_conv_layer_equals_pconv_then_pointwise():
    layer = build_conv_layer(
        dict(type='PConv', n_div=4), 32, 48, 3, stride=1, padding=1,
        bias=True)
    hand_built = nn.Sequential(PartialConv(32, 4), nn.Conv2d(32, 48, 1))
    hand_built.load_state_dict({
        '0.conv.weight': layer.partial_conv.conv.weight,
        '1.weight': layer.pointwise.weight,
        '1.bias': layer.pointwise.bias,
    })
    x = torch.randn(2, 32, 97, 131)
    torch.testing.assert_close(layer(x), hand_built(x))
    # Only the first 32 // 4 channels see a 3x3 neighbourhood: a change in
    # the last channel away from a pixel does not reach it.
    changed = x.clone()
    changed[:, -1, 50, 60] += 10
    delta = (layer(changed) - layer(x)).abs().sum(1)[0]
    assert delta[50, 60] > 0
    assert delta[50, 61] == 0 and delta[49, 60] == 0
    changed = x.clone()
    changed[:, 0, 50, 60] += 10
    assert (layer(changed) - layer(x)).abs().sum(1)[0, 49, 61] > 0


def test_conv_layer_takes_its_n_div():
    """n_div=2 on 16 channels: the 3x3 conv sees channels 0-7, and channels
    8-15 pass to the pointwise conv untouched."""
    layer = build_conv_layer(
        dict(type='PConv', n_div=2), 16, 24, 3, padding=1)
    x = torch.randn(1, 16, 9, 11)
    changed = x.clone()
    changed[:, 5, 4, 5] += 10
    with torch.no_grad():
        out, out_changed = layer.partial_conv(x), layer.partial_conv(changed)
    # A change in channel 5 reaches every convolved channel and no
    # untouched one.
    reached = (out_changed - out)[0].flatten(1).abs().amax(1) > 0
    assert reached.tolist() == [True] * 8 + [False] * 8
    torch.testing.assert_close(out[:, 8:], x[:, 8:], rtol=0, atol=0)
    conv = layer.partial_conv.conv
    assert (conv.in_channels, conv.out_channels) == (8, 8)


def test_conv_layer_in_conv_module():
    module = ConvModule(
        16, 40, 3, padding=1, conv_cfg=PCONV, norm_cfg=dict(type='BN'))
    assert isinstance(module.conv, PartialConvPointwise)
    # ConvModule leaves the bias off when a norm follows.
    assert module.conv.pointwise.bias is None
    assert module.in_channels == 16 and module.out_channels == 40
    weight = module.conv.pointwise.weight.clone()
    module.init_weights()  # keeps the layer's own init
    torch.testing.assert_close(module.conv.pointwise.weight, weight)
    assert module(torch.rand(2, 16, 9, 11)).shape == (2, 40, 9, 11)


def test_pointwise_conv_stays_plain():
    layer = build_conv_layer(PCONV, 16, 24, 1, stride=2, bias=False)
    assert type(layer) is nn.Conv2d
    assert (layer.kernel_size, layer.stride, layer.bias) == ((1, 1), (2, 2),
                                                             None)


@pytest.mark.parametrize(
    'args, shown',
    [
        (dict(kernel_size=3, stride=2, padding=1), 'stride=(2, 2)'),
        (dict(kernel_size=5, padding=2), 'kernel_size=(5, 5)'),
        (dict(kernel_size=3, padding=2, dilation=2), 'dilation=(2, 2)'),
        (dict(kernel_size=3, padding=1, groups=4), 'groups=4'),
        (dict(kernel_size=3, padding=0), 'padding=(0, 0)'),
    ],
)
def test_unsupported_convs_are_refused_with_their_settings(args, shown):
    with pytest.raises(ValueError) as error:
        build_conv_layer(PCONV, 16, 16, **args)
    message = str(error.value)
    assert shown in message
    assert 'in_channels=16, out_channels=16' in message
    assert '3x3 convs with stride 1, padding 1, dilation 1 and groups 1' in \
        message


def test_bad_pconv_arguments_are_named():
    with pytest.raises(ValueError, match=r'n_div must be an int >= 1, got 0'):
        build_conv_layer(dict(type='PConv', n_div=0), 16, 16, 3, padding=1)
    with pytest.raises(ValueError, match=r'in_channels=2 and n_div=4'):
        build_conv_layer(PCONV, 2, 16, 3, padding=1)


def test_refused_inside_a_neck_with_downsampling_convs():
    fpn = pytest.importorskip('mmdet.models.necks').FPN
    with pytest.raises(ValueError, match=r'stride=\(2, 2\)'):
        fpn([16, 32], 16, num_outs=3, add_extra_convs='on_input',
            conv_cfg=PCONV)


def test_trains_one_iteration_inside_fpn():
    fpn_class = pytest.importorskip('mmdet.models.necks').FPN
    torch.manual_seed(0)
    fpn = fpn_class([16, 32], 16, num_outs=2, conv_cfg=PCONV)
    fpn.init_weights()
    assert all(
        isinstance(conv.conv, PartialConvPointwise) for conv in fpn.fpn_convs)
    assert all(type(conv.conv) is nn.Conv2d for conv in fpn.lateral_convs)
    pconv = fpn.fpn_convs[0].conv
    before = [p.detach().clone() for p in pconv.parameters()]
    optimizer = torch.optim.SGD(fpn.parameters(), lr=0.1)
    feats = [torch.rand(2, 16, 24, 32), torch.rand(2, 32, 12, 16)]
    loss = sum(out.square().mean() for out in fpn(feats))
    loss.backward()
    assert pconv.partial_conv.conv.weight.grad.abs().sum() > 0
    optimizer.step()
    after = list(pconv.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(after, before))
    assert torch.isfinite(loss)


def pconv_layers(module):
    return [m for m in module.modules() if isinstance(m, PartialConvPointwise)]


def test_pconv_in_mmseg_uper_head():
    heads = pytest.importorskip('mmseg.models.decode_heads')
    head = heads.UPerHead(
        in_channels=[16, 32],
        in_index=[0, 1],
        channels=16,
        num_classes=3,
        pool_scales=(1, 2),
        conv_cfg=PCONV,
        norm_cfg=dict(type='BN')).eval()
    # The 3x3 convs: one FPN conv, the PPM bottleneck, the FPN bottleneck.
    assert len(pconv_layers(head)) == 3
    with torch.no_grad():
        out = head([torch.rand(1, 16, 24, 32), torch.rand(1, 32, 12, 16)])
    assert out.shape == (1, 3, 24, 32)


def test_pconv_in_mmdet_mask_head():
    heads = pytest.importorskip('mmdet.models.roi_heads.mask_heads')
    head = heads.FCNMaskHead(
        num_convs=2,
        in_channels=16,
        conv_out_channels=16,
        num_classes=3,
        conv_cfg=PCONV)
    assert len(pconv_layers(head.convs)) == 2
    assert head(torch.rand(5, 16, 14, 14)).shape == (5, 3, 28, 28)


def test_pconv_fpn_cuts_the_neck_flops():
    pytest.importorskip('mmdet')
    counts = {}
    for name in ('mask_rcnn_fasternet_t0_shapes',
                 'mask_rcnn_fasternet_t0_pconv_fpn_shapes'):
        cfg = Config.fromfile(REPO / f'configs/demo/{name}.py')
        counts[name] = count_complexity(
            build(cfg), 'mmdet', *SMALL, by_part=True)
    stock, pconv = counts.values()
    assert set(stock['flops_by_part']) >= {'backbone', 'neck', 'rpn_head'}
    for result in (stock, pconv):
        parts = sum(result['flops_by_part'].values())
        assert 0.95 * result['flops'] <= parts <= result['flops']
    assert pconv['flops_by_part']['backbone'] == \
        stock['flops_by_part']['backbone']
    # 64-channel FPN: 9 * 16^2 + 64^2 multiply-adds per pixel against
    # 9 * 64^2 in each 3x3 output conv; the 1x1 lateral convs stay.
    assert pconv['flops_by_part']['neck'] < 0.6 * stock['flops_by_part'][
        'neck']


def test_deploy_and_bf16_keep_working_on_a_pconv_model():
    pytest.importorskip('mmdet')
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    model = MODELS.build(
        dict(
            type='RetinaNet',
            data_preprocessor=dict(type='DetDataPreprocessor'),
            backbone=dict(type='FasterNet', arch='t0', out_indices=(1, 2, 3)),
            neck=dict(
                type='FPN',
                in_channels=[80, 160, 320],
                out_channels=32,
                num_outs=3,
                conv_cfg=PCONV,
                norm_cfg=dict(type='BN')),
            bbox_head=dict(
                type='RetinaHead',
                num_classes=3,
                in_channels=32,
                feat_channels=32,
                stacked_convs=1,
                conv_cfg=PCONV,
                anchor_generator=dict(
                    type='AnchorGenerator',
                    octave_base_scale=4,
                    scales_per_octave=3,
                    ratios=[0.5, 1.0, 2.0],
                    strides=[8, 16, 32]),
                bbox_coder=dict(type='DeltaXYWHBBoxCoder'),
                loss_cls=dict(type='FocalLoss', use_sigmoid=True),
                loss_bbox=dict(type='L1Loss')),
            test_cfg=dict(
                nms_pre=100,
                score_thr=0.0,
                nms=dict(type='nms', iou_threshold=0.5),
                max_per_img=10)))
    randomize_norms(model)
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        reference = model.bbox_head(model.extract_feat(x))
        deployed = fasternet_mm.switch_to_deploy(copy.deepcopy(model))
        folded = deployed.bbox_head(deployed.extract_feat(x))
        fasternet_mm.use_amp(deployed, allow_emulated=True)
        low = deployed.bbox_head(deployed.extract_feat(x))
    for ref, out, bf16 in zip(sum(reference, []), sum(folded, []),
                              sum(low, [])):
        scale = ref.abs().max()
        assert (out - ref).abs().max() / scale < 1e-4
        assert bf16.dtype == torch.float32
        assert (bf16 - ref).abs().max() / scale < 0.1


def test_a_taken_root_name_is_kept_and_named():
    script = textwrap.dedent("""
        from mmengine.registry import MODELS
        from torch import nn

        @MODELS.register_module('PConv')
        class Other(nn.Conv2d):
            pass

        import fasternet_mm
        from mmcv.cnn import build_conv_layer
        assert MODELS.get('PConv') is Other
        layer = build_conv_layer(dict(type='fasternet_mm.PConv'), 8, 8, 3,
                                 padding=1)
        print(type(layer).__name__)
    """)
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == 'PartialConvPointwise'
    output = result.stdout + result.stderr
    assert "already has 'PConv'" in output
    assert "fasternet_mm.PConv" in output
