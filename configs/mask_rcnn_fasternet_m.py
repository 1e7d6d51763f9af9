# Paper Table 4 recipe.
_base_ = './_base_/mask_rcnn_fasternet_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='m',
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/JierunChen/FasterNet/releases/download/v1.0/'  # noqa: E501
            'fasternet_m-epoch.291-val_acc1.82.9620.pth')),
    neck=dict(in_channels=[144, 288, 576, 1152]))

optim_wrapper = dict(optimizer=dict(lr=1e-4))
