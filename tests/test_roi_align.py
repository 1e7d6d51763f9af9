import pytest
import torch
from mmcv.ops import RoIAlign

from fasternet_mm.ops import GatherRoIAlign


def random_rois(num, num_images, extent, generator):
    corner = torch.rand(num, 2, generator=generator) * (extent + 20) - 10
    size = torch.rand(num, 2, generator=generator) * 40 + 0.5
    image = torch.randint(0, num_images, (num, 1), generator=generator)
    return torch.cat([image.float(), corner, corner + size], dim=1)


@pytest.mark.parametrize('output_size, sampling_ratio, scale',
                         [(7, 2, 1 / 4), (14, 2, 1 / 8), ((5, 3), 1, 1 / 4),
                          (7, 3, 1 / 16)])
def test_matches_mmcv_roi_align_and_its_gradient(output_size, sampling_ratio,
                                                 scale):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(
        3, 16, 13, 11, generator=generator, requires_grad=True)
    rois = random_rois(64, 3, 11 / scale, generator)
    upstream = torch.randn(
        64,
        16,
        *((output_size, ) *
          2 if isinstance(output_size, int) else output_size),
        generator=generator)
    outputs, grads = [], []
    for op in (RoIAlign(output_size, scale, sampling_ratio, aligned=True),
               GatherRoIAlign(output_size, scale, sampling_ratio)):
        features.grad = None
        out = op(features, rois)
        (out * upstream).sum().backward()
        outputs.append(out)
        grads.append(features.grad.clone())
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    # Gradients sum many taps: only the summation order differs.
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-4)


def test_no_rois():
    out = GatherRoIAlign(7, 0.25)(torch.rand(1, 4, 8, 8), torch.zeros(0, 5))
    assert out.shape == (0, 4, 7, 7)


@pytest.mark.parametrize('kwargs, pattern', [
    (dict(sampling_ratio=0), 'sampling_ratio >= 1.*got 0'),
    (dict(aligned=False), 'aligned=False'),
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
