_base_ = './_base_/upernet_fasternet_ade20k.py'

model = dict(
    backbone=dict(_base_.fasternet_archs.s, drop_path_rate=0.15),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
