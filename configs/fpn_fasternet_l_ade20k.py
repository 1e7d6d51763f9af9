_base_ = './_base_/fpn_fasternet_ade20k.py'

model = dict(
    backbone=dict(
        arch='l',
        drop_path_rate=0.3,
        init_cfg=dict(
            type='Pretrained', checkpoint=_base_.fasternet_imagenet.l)),
    neck=dict(in_channels=[192, 384, 768, 1536]))
