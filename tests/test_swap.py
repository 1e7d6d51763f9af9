"""FasterNet swapped into upstream mmdet and mmseg configs, as the README's
swap section tells users to do it."""
import pytest
from helpers import SMALL, build, forward_once
from mmengine.config import Config

from fasternet_mm.errors import PreflightError
from fasternet_mm.preflight import check_model

WIDTHS = [40, 80, 160, 320]  # FasterNet-T0
BACKBONE = dict(
    _delete_=True,
    type='FasterNet',
    arch='t0',
    out_indices=(0, 1, 2, 3),
    init_cfg=None)
IMPORTS = dict(imports=['fasternet_mm'], allow_failed_imports=False)

# upstream config: the extra overrides beyond the backbone
MMDET_SWAPS = {
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py':
    dict(neck=dict(in_channels=WIDTHS)),
    'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py':
    dict(neck=dict(in_channels=WIDTHS)),
    'mmdet::atss/atss_r50_fpn_1x_coco.py':
    dict(neck=dict(in_channels=WIDTHS)),
    'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py':
    dict(neck=dict(in_channels=WIDTHS)),
    # RTMDet's PAFPN takes the last three levels.
    'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py':
    dict(
        backbone=dict(out_indices=(1, 2, 3)),
        neck=dict(in_channels=WIDTHS[1:])),
}
MMSEG_SWAPS = {
    'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py':
    dict(neck=dict(in_channels=WIDTHS)),
    'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py':
    dict(
        decode_head=dict(in_channels=WIDTHS),
        auxiliary_head=dict(in_channels=WIDTHS[2])),
    'mmseg::pspnet/pspnet_r50-d8_4xb4-160k_ade20k-512x512.py':
    dict(
        decode_head=dict(in_channels=WIDTHS[3]),
        auxiliary_head=dict(in_channels=WIDTHS[2])),
    'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py':
    dict(
        decode_head=dict(in_channels=WIDTHS[3], c1_in_channels=WIDTHS[0]),
        auxiliary_head=dict(in_channels=WIDTHS[2])),
}


def swapped(upstream, overrides, pretrained_none=False):
    cfg = Config.fromstring(f"_base_ = '{upstream}'\n", file_format='.py')
    backbone = dict(BACKBONE, **overrides.get('backbone', {}))
    model = dict(overrides, backbone=backbone)
    if pretrained_none:
        model['pretrained'] = None
    cfg.merge_from_dict(dict(custom_imports=IMPORTS, model=model))
    return cfg


@pytest.mark.parametrize('upstream', list(MMDET_SWAPS))
def test_swap_into_mmdet(upstream):
    cfg = swapped(upstream, MMDET_SWAPS[upstream])
    check_model(cfg)
    results = forward_once(build(cfg), 'mmdet')
    assert 'bboxes' in results[0].pred_instances


@pytest.mark.parametrize('upstream', list(MMSEG_SWAPS))
def test_swap_into_mmseg(upstream):
    cfg = swapped(upstream, MMSEG_SWAPS[upstream], pretrained_none=True)
    check_model(cfg)
    results = forward_once(build(cfg), 'mmseg')
    assert results[0].pred_sem_seg.data.shape[-2:] == SMALL


def test_stale_resnet_pretrained_is_explained():
    upstream = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
    cfg = swapped(upstream, MMSEG_SWAPS[upstream])
    assert cfg.model.pretrained == 'open-mmlab://resnet50_v1c'
    with pytest.raises(
            PreflightError, match=r"resnet50_v1c.*model\.pretrained=None"):
        check_model(cfg)


def test_mismatched_neck_names_both_lists():
    upstream = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
    cfg = swapped(upstream, {})
    with pytest.raises(
            PreflightError,
            match=r'\[256, 512, 1024, 2048\].*\[40, 80, 160, 320\]'):
        check_model(cfg)
