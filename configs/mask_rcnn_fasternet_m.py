# Paper Table 4 recipe.
_base_ = './_base_/mask_rcnn_fasternet_fpn_1x_coco.py'

model = dict(
    backbone=_base_.fasternet_archs.m,
    neck=dict(in_channels=[144, 288, 576, 1152]))
optim_wrapper = dict(optimizer=dict(lr=1e-4))
