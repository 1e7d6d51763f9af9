# Not in the paper: lr 2e-4 and the ImageNet drop-path rate.
_base_ = './_base_/mask_rcnn_fasternet_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='t2',
        drop_path_rate=0.05,
        init_cfg=dict(
            type='Pretrained', checkpoint=_base_.fasternet_imagenet.t2)),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(optimizer=dict(lr=2e-4))
