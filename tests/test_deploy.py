"""Deploy forms: the RoIAlign swap, conv-BN fusion, and the deployed
FasterNet (channels-last, compiled) against its training form."""
import pytest
import torch
from helpers import TINY_ARCH, randomize_norms, record_stage_formats
from mmcv.ops import RoIAlign
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from fasternet_mm import FasterNet, GatherRoIAlign, switch_to_deploy
from fasternet_mm.models import (DeployableMixin, FasterNetBlock,
                                 FasterNetCSPLayer, FasterNetPAFPN,
                                 PConvNeXtBlock)
from fasternet_mm.models.layers import fuse_conv_bn
from fasternet_mm.testing import relative_error


def random_rois(count, corner_extent, size_extent, generator):
    """``count`` RoIs on two images: corners up to ``corner_extent``,
    sides from 1 to ``size_extent + 1``."""
    corner = torch.rand(count, 2, generator=generator) * corner_extent
    size = torch.rand(count, 2, generator=generator) * size_extent + 1
    image = torch.randint(0, 2, (count, 1), generator=generator)
    return torch.cat([image.float(), corner, corner + size], 1)


def test_switch_to_deploy_swaps_mmcv_roi_align_for_equal_gather():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    extractor = MODELS.build(
        dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=8,
            featmap_strides=[4, 8, 16, 32]))
    generator = torch.Generator().manual_seed(0)
    feats = tuple(
        torch.randn(2, 8, 64 // s, 96 // s, generator=generator)
        for s in (1, 2, 4, 8))
    rois = random_rois(50, 300, 200, generator)
    expected = extractor(feats, rois)
    switch_to_deploy(extractor)
    assert all(isinstance(m, GatherRoIAlign) for m in extractor.roi_layers)
    assert not any(isinstance(m, RoIAlign) for m in extractor.modules())
    torch.testing.assert_close(
        extractor(feats, rois), expected, rtol=1e-5, atol=1e-5)


def test_switch_to_deploy_keeps_every_roi_align_setting():
    """aligned=False (mmcv's legacy rule), a scale and a fixed sampling
    ratio all carry over to the GatherRoIAlign."""
    model = nn.ModuleDict(dict(roi=RoIAlign(7, 0.25, 2, aligned=False)))
    generator = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 8, 24, 32, generator=generator)
    rois = random_rois(40, 100, 60, generator)
    expected = model['roi'](feats, rois)
    switch_to_deploy(model)
    swapped = model['roi']
    assert isinstance(swapped, GatherRoIAlign)
    # Measured: at most 6e-6 apart on values up to 2.6; without
    # aligned=False the samples shift by half a pixel, and outputs by ~0.1.
    torch.testing.assert_close(
        swapped(feats, rois), expected, rtol=1e-4, atol=1e-4)
    assert (swapped.output_size, swapped.spatial_scale,
            swapped.sampling_ratio, swapped.aligned) == ((7, 7), 0.25, 2,
                                                         False)


def test_max_pooling_roi_align_is_left_alone():
    model = torch.nn.Sequential(RoIAlign(7, 1.0, pool_mode='max'))
    switch_to_deploy(model)
    assert type(model[0]) is RoIAlign


def norms_with_variances(model, low, high, seed=0):
    """Seeded BN statistics with running variances log-uniform in
    [low, high] and weights scaled by their standard deviation, so that the
    outputs stay of order one; with variances near BN's eps (1e-5), a fold
    that forgets eps is off by 0.5-5%."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                n = module.num_features
                var = low * (high / low)**torch.rand(n, generator=generator)
                module.running_var.copy_(var)
                module.running_mean.copy_(torch.randn(n, generator=generator))
                module.weight.copy_(
                    torch.randn(n, generator=generator) * var.sqrt())
                module.bias.copy_(torch.randn(n, generator=generator))
    return model.eval()


@pytest.mark.parametrize('variances', [(0.5, 1.5), (1e-4, 1e-3)])
@pytest.mark.parametrize('bias', [False, True])
def test_fuse_conv_bn_equals_conv_then_bn(bias, variances):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, 3, stride=2, padding=1, bias=bias)
    if bias:  # larger than its default init, so that its scaling shows
        nn.init.normal_(conv.bias)
    bn = norms_with_variances(nn.BatchNorm2d(12), *variances)
    x = torch.randn(2, 8, 13, 17)
    with torch.no_grad():
        expected = bn(conv(x))
        fused = fuse_conv_bn(conv, bn)(x)
    # float32 rounding only (measured: below 1e-6, over seeds and CPU
    # kernels).
    error = relative_error([fused], [expected])
    assert error <= 1e-5, error


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_fuse_conv_bn_folds_a_half_precision_pair_in_fp32(dtype):
    """The folded weights of a 16-bit conv and BN equal the fp32 fold cast
    to 16 bits, element for element; folding in 16 bits rounds
    rsqrt(var + eps) of variances near eps, where fp16 is subnormal."""
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, 3, padding=1, bias=True)
    bn = norms_with_variances(nn.BatchNorm2d(12), 1e-6, 1e-4)
    fused = fuse_conv_bn(conv.to(dtype), bn.to(dtype))
    assert fused.weight.dtype == dtype
    # The 16-bit pair, folded after casting it back to fp32.
    reference = fuse_conv_bn(conv.float(), bn.float())
    torch.testing.assert_close(fused.weight, reference.weight.to(dtype),
                               rtol=0, atol=0)
    torch.testing.assert_close(fused.bias, reference.bias.to(dtype),
                               rtol=0, atol=0)


def test_fasternet_deploy_form_with_variances_near_eps():
    model = FasterNet(arch=dict(TINY_ARCH, drop_path_rate=0.0))
    model = norms_with_variances(model, 1e-4, 1e-3)
    x = torch.rand(1, 3, 97, 131)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy()
        deployed = model(x)
    # float32 rounding only (measured: at most 1.2e-6, over seeds and CPU
    # kernels).
    error = relative_error(deployed, expected)
    assert error <= 1e-4, error


@pytest.mark.parametrize('arch', list(FasterNet.arch_settings))
def test_deploy_form_equals_training_form(arch):
    from fasternet_mm import switch_to_deploy
    torch.manual_seed(0)
    model = randomize_norms(FasterNet(arch=arch)).eval()
    x = torch.rand(1, 3, 97, 131)
    with torch.no_grad():
        expected = model(x)
        wrapper = torch.nn.ModuleDict(dict(backbone=model))
        switch_to_deploy(wrapper)
        deployed = model(x)
    assert model.deploy
    assert not any(
        isinstance(m, _BatchNorm)
        for name, m in model.named_modules() if not name.startswith('norm'))
    error = relative_error(deployed, expected)
    assert error <= 1e-4, error
    with pytest.raises(RuntimeError, match='deploy form'):
        model.train()


def test_deploy_form_channels_last_on_every_stage():
    """At 1024x1056 every stage's map (down to 32x33 at stride 32) is
    large enough for the channels_last_large rule (which 'cpu' picks where
    oneDNN runs AVX-512): each stage must run it, and still equal the
    training form in fp32."""
    from fasternet_mm import switch_to_deploy
    torch.manual_seed(0)
    model = randomize_norms(FasterNet(arch=TINY_ARCH)).eval()
    x = torch.rand(1, 3, 1024, 1056)
    with torch.no_grad():
        expected = model(x)
        switch_to_deploy(model, memory_format='channels_last_large')
        formats = record_stage_formats(model)
        deployed = model(x)
    assert formats == [True] * 4
    error = relative_error(deployed, expected)
    assert error <= 1e-4, error


def test_compiled_deploy_form_is_one_graph_with_equal_outputs():
    """switch_to_deploy(compile=...) compiles each FasterNet in place.
    fullgraph=True fails on any graph break. The aot_eager backend keeps
    this CPU test to seconds; the GPU test uses the default inductor."""
    from fasternet_mm import switch_to_deploy
    torch.manual_seed(0)
    model = randomize_norms(FasterNet(arch=TINY_ARCH)).eval()
    x = torch.rand(1, 3, 97, 131)
    with torch.no_grad():
        expected = model(x)
        switch_to_deploy(
            model, compile=dict(backend='aot_eager', fullgraph=True))
        compiled = model(x)
    assert model._compiled_call_impl is not None
    error = relative_error(compiled, expected)
    assert error <= 1e-4, error
    with pytest.raises(TypeError, match="compile must be a bool or a dict"):
        switch_to_deploy(model, compile='max-autotune')


@pytest.mark.parametrize(
    'build', [
        lambda: FasterNetBlock(16, norm_cfg=dict(type='BN')),
        lambda: PConvNeXtBlock(16, 16),
        lambda: FasterNetCSPLayer(16, 16),
        lambda: FasterNetPAFPN([16, 32], 16),
        lambda: FasterNet(arch=TINY_ARCH),
    ],
    ids=['block', 'pconvnext', 'csp', 'neck', 'backbone'])
def test_one_deploy_protocol(build):
    """The blocks, the neck and the backbone share one contract: a
    ``deploy`` flag, ``switch_to_deploy()`` that folds every BatchNorm of a
    conv-BN pair and is idempotent, and a one-line refusal to train after
    it that names the module."""
    module = build()
    assert isinstance(module, DeployableMixin) and not module.deploy
    module.switch_to_deploy()
    assert all(m.deploy for m in module.modules()
               if isinstance(m, DeployableMixin))
    assert not module.training
    folded = [name for name, m in module.named_modules()
              if isinstance(m, _BatchNorm) and not name.startswith('norm')]
    assert folded == []
    name = type(module).__name__
    with pytest.raises(RuntimeError, match=rf'^This {name} is in its deploy '
                       r'form [^\n]*$'):
        module.train()
    module.switch_to_deploy()  # idempotent
    module.eval()  # eval stays allowed
