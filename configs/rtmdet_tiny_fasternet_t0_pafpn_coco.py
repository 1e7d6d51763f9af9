# RTMDet-tiny with a FasterNet-T0 backbone and FasterNetPAFPN: mmdet's
# 300-epoch recipe with the backbone's last three stages (strides 8, 16,
# 32) and a PAFPN whose CSP layers have FasterNet blocks and whose 3x3
# output convs are PConv + pointwise conv.
_base_ = [
    'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py', './_base_/fasternet.py'
]

custom_imports = _base_.fasternet_imports
default_hooks = _base_.fasternet_hooks

model = dict(
    backbone=dict(
        _delete_=True,
        type='FasterNet',
        arch='t0',
        out_indices=(1, 2, 3),
        init_cfg=dict(
            type='Pretrained', checkpoint=_base_.fasternet_imagenet.t0)),
    neck=dict(
        _delete_=True,
        type='FasterNetPAFPN',
        in_channels=[80, 160, 320],
        out_channels=96,
        num_csp_blocks=1,
        n_div=4,
        norm_cfg=dict(type='SyncBN'),
        act_cfg=dict(type='SiLU', inplace=True)))
