"""The deploy form under each memory-format rule equals the training form,
in the detectors and segmentors users put FasterNet into; 'cpu' picks its
rule by the instruction set oneDNN runs.

The CUDA rule (every map channels-last) runs here on a CPU model: the
backbone's memory format is chosen by rule, not by device, and
GatherRoIAlign is made to call mmcv's kernel as it does on CUDA. mmcv's
CPU and CUDA RoIAlign kernels both read raw memory as NCHW, so a
channels-last map handed to either gives wrong features; these tests see
that.
"""
import pytest
import torch
from helpers import REPO, build, randomize_norms, record_stage_formats
from mmengine.config import Config
from mmengine.structures import InstanceData
from test_swap import MMSEG_SWAPS, swapped

from fasternet_mm import FasterNet, GatherRoIAlign, switch_to_deploy
from fasternet_mm.model_utils import dummy_sample
from fasternet_mm.testing import relative_error

# Stride 4 gives a 40x56 map: channels-last under the CPU rule too.
SIZE = (160, 224)
TOLERANCE = 1e-4

MMDET = {
    'mask_rcnn': 'configs/mask_rcnn_fasternet_t0.py',
    'cascade_mask_rcnn':
    'configs/cascade_mask_rcnn_fasternet_s_fpn_ms_3x_coco.py',
    'retinanet': 'configs/retinanet_fasternet_s_fpn_1x_coco.py',
    'rtmdet': 'configs/rtmdet_tiny_fasternet_t0_pafpn_coco.py',
    'pconv_fpn': 'configs/mask_rcnn_fasternet_t0_pconv_fpn.py',
    # Max pooling: switch_to_deploy leaves mmcv's RoIAlign in place.
    'mask_rcnn_max_pool_roi': 'configs/mask_rcnn_fasternet_t0.py',
}
MMSEG = {
    'upernet': 'configs/upernet_fasternet_s_ade20k.py',
    'semantic_fpn': 'configs/fpn_fasternet_s_ade20k.py',
    'pspnet': 'mmseg::pspnet/pspnet_r50-d8_4xb4-160k_ade20k-512x512.py',
    'deeplabv3plus': 'mmseg::deeplabv3plus/'
    'deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py',
}


def load_config(name):
    if name in MMSEG and MMSEG[name].startswith('mmseg::'):
        upstream = MMSEG[name]
        return swapped(upstream, MMSEG_SWAPS[upstream], pretrained_none=True)
    cfg = Config.fromfile(REPO / {**MMDET, **MMSEG}[name])
    if name == 'mask_rcnn_max_pool_roi':
        for extractor in ('bbox_roi_extractor', 'mask_roi_extractor'):
            cfg.model.roi_head[extractor].roi_layer = dict(
                type='RoIAlign', output_size=7 if 'bbox' in extractor else 14,
                sampling_ratio=2, pool_mode='max', aligned=True)
    return cfg


def proposals(count=24, seed=0):
    """Boxes from 12 to 150 pixels: RoIs on the first three FPN levels."""
    generator = torch.Generator().manual_seed(seed)
    height, width = SIZE
    size = 12 + 138 * torch.rand(count, 2, generator=generator)
    corner = torch.rand(count, 2, generator=generator) * (
        torch.tensor([width, height]) - size)
    return InstanceData(
        bboxes=torch.cat([corner, corner + size], 1),
        scores=torch.rand(count, generator=generator))


def outputs(model, scope, image):
    """Every tensor the model computes from ``image`` in tensor mode; a
    two-stage detector runs its RoI heads on fixed proposals, so that the
    RPN's ranking of near-equal random scores cannot change the RoIs."""
    sample = dummy_sample(scope, *SIZE)
    with torch.no_grad():
        if not hasattr(model, 'roi_head'):
            return flatten(model._forward(image, [sample]))
        features = model.extract_feat(image)
        return flatten((model.rpn_head(features),
                        model.roi_head.forward(features, [proposals()],
                                               [sample])))


def flatten(nested):
    if isinstance(nested, torch.Tensor):
        return [nested]
    return [t for item in nested for t in flatten(item)]


@pytest.fixture
def mmcv_kernel_on_cpu(monkeypatch):
    """GatherRoIAlign calls mmcv's kernel on the CPU, as it does on CUDA."""
    monkeypatch.setattr(GatherRoIAlign, '_uses_mmcv_kernel',
                        staticmethod(lambda features: True))


@pytest.mark.parametrize('rule',
                         ['channels_last_large', 'contiguous', 'cuda'])
@pytest.mark.parametrize('name', list(MMDET) + list(MMSEG))
def test_deployed_equals_training_form(name, rule, request):
    if rule == 'cuda':
        request.getfixturevalue('mmcv_kernel_on_cpu')
    scope = 'mmseg' if name in MMSEG else 'mmdet'
    torch.manual_seed(0)
    model = randomize_norms(build(load_config(name)))
    image = torch.rand(1, 3, *SIZE)
    expected = outputs(model, scope, image)
    switch_to_deploy(model, memory_format=rule)
    assert model.backbone.deploy
    assert model.backbone.memory_format == FasterNet.resolve_memory_format(
        rule)
    deployed = outputs(model, scope, image)
    assert len(deployed) == len(expected)
    error = relative_error(deployed, expected)
    assert error <= TOLERANCE, (name, rule, error)


def test_deploy_outputs_are_nchw_under_every_rule():
    for rule in list(FasterNet.memory_format_rules) + ['cpu', 'cuda']:
        model = FasterNet(arch='t0').eval()
        model.switch_to_deploy(memory_format=rule)
        for out in model(torch.rand(1, 3, *SIZE)):
            assert out.is_contiguous(), (rule, out.stride())


def test_cuda_rule_runs_every_stage_channels_last():
    model = FasterNet(arch='t0').eval()
    model.switch_to_deploy(memory_format='cuda')
    assert model.memory_format == 'channels_last'
    formats = record_stage_formats(model)
    # 16x24 at stride 4: NCHW under channels_last_large.
    model(torch.rand(1, 3, 64, 96))
    assert formats == [True] * 4
    assert model.patch_embed.conv.weight.is_contiguous(
        memory_format=torch.channels_last)


def test_unknown_memory_format_rule_is_named():
    with pytest.raises(
            ValueError,
            match=r"memory_format must be one of \('channels_last', "
            r"'channels_last_large', 'contiguous', 'cpu', 'cuda'\) or None "
            r"\(by device\), got 'tpu'"):
        FasterNet(arch='t0').switch_to_deploy(memory_format='tpu')


def test_layout_is_a_deprecated_name_of_memory_format():
    model = FasterNet(arch='t0').eval()
    with pytest.deprecated_call(match=r'switch_to_deploy\(layout=\.\.\.\) '
                                r'is deprecated; use memory_format'):
        switch_to_deploy(model, layout='cuda')
    with pytest.deprecated_call(match='use FasterNet.memory_format'):
        assert model.layout == 'channels_last'
    with pytest.deprecated_call():
        model.switch_to_deploy(layout='contiguous')
    assert model.memory_format == 'contiguous'
    # Back from the CUDA rule, the weights leave channels-last too.
    assert model.patch_embed.conv.weight.is_contiguous()
    with pytest.raises(TypeError, match='pass memory_format only'):
        model.switch_to_deploy(memory_format='cpu', layout='cuda')


def test_mmcv_kernel_path_takes_bf16_channels_last_maps(mmcv_kernel_on_cpu):
    """On CUDA, GatherRoIAlign hands mmcv's kernel NCHW maps; bf16 maps,
    which the kernel cannot read, are pooled in fp32 and come back in
    bf16."""
    torch.manual_seed(0)
    layer = GatherRoIAlign(7, 0.25, 2, aligned=True)
    features = torch.randn(2, 16, 40, 56)
    rois = torch.tensor([[0., 10., 12., 90., 100.], [1., 30., 5., 200., 150.]])
    reference = layer.gather(features, rois)
    pooled = layer(
        features.bfloat16().contiguous(memory_format=torch.channels_last),
        rois)
    assert pooled.dtype == torch.bfloat16
    torch.testing.assert_close(
        pooled.float(), reference, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize('isa', ['avx512', 'avx2', 'other'])
def test_cpu_rule_follows_the_isa_onednn_runs(isa, monkeypatch):
    """'cpu' (and None, for a model on the CPU) runs the rule measured for
    the instruction set oneDNN runs: at 1024x1056 every stage's map is
    large enough for channels-last, so the formats tell the rule."""
    from fasternet_mm.models.backbones import fasternet
    monkeypatch.setattr(fasternet, 'onednn_isa', lambda: isa)
    rule = FasterNet.device_memory_formats[isa]
    expected = {
        'channels_last_large': [True] * 4,
        'contiguous': [False] * 4
    }[rule]
    for memory_format in ('cpu', None):
        model = FasterNet(arch='t0').eval()
        model.switch_to_deploy(memory_format=memory_format)
        assert model.memory_format == rule
        formats = record_stage_formats(model)
        with torch.no_grad():
            model(torch.rand(1, 3, 1024, 1056))
        assert formats == expected, (isa, memory_format)


def test_measured_rules():
    """The table says what docs/deploy.md measured: channels-last on large
    maps where oneDNN runs AVX-512, NCHW where it runs AVX2."""
    assert FasterNet.device_memory_formats == {
        'cuda': 'channels_last',
        'avx512': 'channels_last_large',
        'avx2': 'contiguous',
        'other': 'contiguous',
    }
