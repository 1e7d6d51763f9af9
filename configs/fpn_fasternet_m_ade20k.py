_base_ = './_base_/fpn_fasternet_ade20k.py'

model = dict(
    backbone=dict(
        arch='m',
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained', checkpoint=_base_.fasternet_imagenet.m)),
    neck=dict(in_channels=[144, 288, 576, 1152]))
