_base_ = './_base_/upernet_fasternet_ade20k.py'

model = dict(
    backbone=_base_.fasternet_archs.m,
    decode_head=dict(in_channels=[144, 288, 576, 1152]),
    auxiliary_head=dict(in_channels=576))
