_base_ = './_base_/fpn_fasternet_ade20k.py'

model = dict(
    backbone=dict(
        arch='s',
        drop_path_rate=0.15,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/JierunChen/FasterNet/releases/download/v1.0/'  # noqa: E501
            'fasternet_s-epoch.299-val_acc1.81.2840.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
