_base_ = './_base_/fpn_fasternet_ade20k.py'

model = dict(
    backbone=_base_.fasternet_archs.l,
    neck=dict(in_channels=[192, 384, 768, 1536]))
