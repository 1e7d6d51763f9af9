"""Helpers shared by the tests that build whole models from configs."""
import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, init_default_scope

SMALL = (96, 128)


def build(cfg):
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None
    return revert_sync_batchnorm(MODELS.build(cfg.model)).eval()


def forward_once(model, scope, size=SMALL):
    meta = dict(
        img_shape=size,
        ori_shape=size,
        pad_shape=size,
        batch_input_shape=size,
        scale_factor=(1.0, 1.0))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=meta)
    else:
        from mmseg.structures import SegDataSample
        sample = SegDataSample(metainfo=meta)
    with torch.no_grad():
        return model(torch.rand(1, 3, *size), [sample], mode='predict')
