# Paper Table 4 recipe.
_base_ = './_base_/mask_rcnn_fasternet_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='s',
        drop_path_rate=0.15,
        init_cfg=dict(
            type='Pretrained', checkpoint=_base_.fasternet_imagenet.s)),
    neck=dict(in_channels=[128, 256, 512, 1024]))

optim_wrapper = dict(optimizer=dict(lr=2e-4))
