_base_ = './_base_/fpn_fasternet_ade20k.py'

model = dict(
    backbone=dict(_base_.fasternet_archs.s, drop_path_rate=0.15),
    neck=dict(in_channels=[128, 256, 512, 1024]))
