_base_ = './_base_/upernet_fasternet_ade20k.py'

model = dict(
    backbone=_base_.fasternet_archs.l,
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768))
