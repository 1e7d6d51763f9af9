# Paper Table 4 recipe.
_base_ = './_base_/mask_rcnn_fasternet_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='l',
        drop_path_rate=0.3,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/JierunChen/FasterNet/releases/download/v1.0/'  # noqa: E501
            'fasternet_l-epoch.299-val_acc1.83.5060.pth')),
    neck=dict(in_channels=[192, 384, 768, 1536]))

optim_wrapper = dict(optimizer=dict(lr=1e-4))
