# Paper Table 4 recipe.
_base_ = './_base_/mask_rcnn_fasternet_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='m',
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained', checkpoint=_base_.fasternet_imagenet.m)),
    neck=dict(in_channels=[144, 288, 576, 1152]))

optim_wrapper = dict(optimizer=dict(lr=1e-4))
