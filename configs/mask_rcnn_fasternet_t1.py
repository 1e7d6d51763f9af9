# Not in the paper: lr 2e-4 and the ImageNet drop-path rate.
_base_ = './_base_/mask_rcnn_fasternet_fpn_1x_coco.py'

model = dict(
    backbone=_base_.fasternet_archs.t1,
    neck=dict(in_channels=[64, 128, 256, 512]))
