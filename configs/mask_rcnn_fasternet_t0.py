# Not in the paper: lr 2e-4 and the ImageNet drop-path rate.
_base_ = './_base_/mask_rcnn_fasternet_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='t0',
        drop_path_rate=0.0,
        init_cfg=dict(
            type='Pretrained', checkpoint=_base_.fasternet_imagenet.t0)),
    neck=dict(in_channels=[40, 80, 160, 320]))

optim_wrapper = dict(optimizer=dict(lr=2e-4))
