_base_ = './_base_/upernet_fasternet_ade20k.py'

model = dict(
    backbone=dict(
        arch='m',
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained', checkpoint=_base_.fasternet_imagenet.m)),
    decode_head=dict(in_channels=[144, 288, 576, 1152]),
    auxiliary_head=dict(in_channels=576))
