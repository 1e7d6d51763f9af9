_base_ = './_base_/fpn_fasternet_ade20k.py'

model = dict(
    backbone=_base_.fasternet_archs.m,
    neck=dict(in_channels=[144, 288, 576, 1152]))
