import pytest
import torch
from mmcv.ops import RoIAlign, roi_align

from fasternet_mm.ops import GatherRoIAlign


def random_rois(num, num_images, extent, generator):
    corner = torch.rand(num, 2, generator=generator) * (extent + 20) - 10
    size = torch.rand(num, 2, generator=generator) * 40 + 0.5
    image = torch.randint(0, num_images, (num, 1), generator=generator)
    return torch.cat([image.float(), corner, corner + size], dim=1)


@pytest.mark.parametrize('output_size, sampling_ratio, scale, aligned', [
    (7, 2, 1 / 4, True),
    (14, 2, 1 / 8, True),
    ((5, 3), 1, 1 / 4, True),
    (7, 3, 1 / 16, True),
    (7, 0, 1 / 4, True),
    ((5, 3), 0, 1 / 2, True),
    (7, 0, 1, False),
    (7, 2, 1 / 4, False),
])
def test_matches_mmcv_roi_align_and_its_gradient(output_size, sampling_ratio,
                                                 scale, aligned):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(
        3, 16, 13, 11, generator=generator, requires_grad=True)
    # Up to 40 image pixels: adaptive sampling gives grids of 1 to 6.
    rois = random_rois(64, 3, 11 / scale, generator)
    upstream = torch.randn(
        64,
        16,
        *((output_size, ) *
          2 if isinstance(output_size, int) else output_size),
        generator=generator)
    outputs, grads = [], []
    for op in (RoIAlign(output_size, scale, sampling_ratio, aligned=aligned),
               GatherRoIAlign(
                   output_size, scale, sampling_ratio, aligned=aligned)):
        features.grad = None
        out = op(features, rois)
        (out * upstream).sum().backward()
        outputs.append(out)
        grads.append(features.grad.clone())
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    # Gradients sum many taps: only the summation order differs.
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-4)


def test_a_sample_on_the_far_border_is_clamped_not_dropped():
    """mmcv zeroes a sample only beyond ``coord > size``: one exactly at
    ``size`` reads the last pixel. RoI (0, 0)-(16, 16) on an 8x8 map, one
    bin, one sample: it lies at x = y = 8."""
    features = torch.randn(
        2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    rois = torch.tensor([[1, 0., 0., 16., 16.]])
    op = GatherRoIAlign(1, 1.0, 1, aligned=False)
    expected = roi_align(features, rois, 1, 1.0, 1, 'avg', False)
    torch.testing.assert_close(expected[0, :, 0, 0], features[1, :, 7, 7])
    torch.testing.assert_close(op.gather(features, rois), expected)


def test_no_rois():
    out = GatherRoIAlign(7, 0.25)(torch.rand(1, 4, 8, 8), torch.zeros(0, 5))
    assert out.shape == (0, 4, 7, 7)


def test_adaptive_sampling_uses_several_grids():
    rois = torch.tensor([[0, 0., 0., 3., 3.], [0, 0., 0., 30., 12.],
                         [0, 5., 5., 5., 5.]])
    op = GatherRoIAlign(7, 1.0)
    grids = sorted((h, w) for h, w, _ in op._grids(op._boxes(rois)))
    assert grids == [(0, 0), (1, 1), (2, 5)]
    features = torch.randn(1, 4, 40, 40)
    expected = RoIAlign(7, 1.0, 0, aligned=True)(features, rois)
    torch.testing.assert_close(op(features, rois), expected)
    assert op(features, rois)[2].abs().max() == 0  # empty grid: zeros


def test_inverted_roi_is_named():
    with pytest.raises(ValueError, match=r'x2 >= x1.*\[0.0, 9.0'):
        GatherRoIAlign(7, 1.0)(torch.rand(1, 4, 8, 8),
                               torch.tensor([[0, 9., 1., 2., 5.]]))


@pytest.mark.parametrize('kwargs, pattern', [
    (dict(sampling_ratio=-1), 'int >= 0.*got -1'),
    (dict(sampling_ratio=1.5), 'got 1.5'),
    (dict(pool_mode='max'), "pool_mode='max'"),
])
def test_unsupported_settings_are_named(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        GatherRoIAlign(7, 0.25, **kwargs)


def test_mmdet_roi_extractor_builds_it():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')  # other tests may have left mmseg's
    extractor = MODELS.build(
        dict(
            type='SingleRoIExtractor',
            roi_layer=dict(
                type='GatherRoIAlign', output_size=7, sampling_ratio=2),
            out_channels=8,
            featmap_strides=[4, 8]))
    assert all(
        isinstance(layer, GatherRoIAlign) for layer in extractor.roi_layers)
    feats = (torch.rand(2, 8, 16, 16), torch.rand(2, 8, 8, 8))
    rois = torch.tensor([[0, 1., 1., 20., 20.], [1, 0., 0., 60., 60.]])
    assert extractor(feats, rois).shape == (2, 8, 7, 7)


@pytest.mark.parametrize('channels_last', [False, True])
def test_gather_reads_one_row_per_pixel(monkeypatch, channels_last):
    """The table the gather reads is contiguous whatever the map's layout:
    a one-image NCHW map reshaped without a copy has its channels H*W
    apart, which embedding_bag reads an order of magnitude slower."""
    import torch.nn.functional as F
    tables = []
    gather = F.embedding_bag

    def recording(index, table, **kwargs):
        tables.append(table)
        return gather(index, table, **kwargs)

    monkeypatch.setattr(F, 'embedding_bag', recording)
    features = torch.rand(1, 16, 20, 24)
    if channels_last:
        features = features.contiguous(memory_format=torch.channels_last)
    GatherRoIAlign(7, 0.5, 2)(features, torch.tensor([[0., 2., 3., 30., 40.]]))
    assert tables and all(table.is_contiguous() for table in tables)
