# Paper Table 4 recipe.
_base_ = './_base_/mask_rcnn_fasternet_fpn_1x_coco.py'

model = dict(
    backbone=_base_.fasternet_archs.l,
    neck=dict(in_channels=[192, 384, 768, 1536]))
optim_wrapper = dict(optimizer=dict(lr=1e-4))
