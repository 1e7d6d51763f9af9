# RTMDet-tiny with a FasterNet-T0 backbone and FasterNetPAFPN: mmdet's
# 300-epoch recipe with the backbone's last three stages (strides 8, 16,
# 32) and FasterNetPAFPN: CSP layers of PConvNeXt blocks (PConv + pointwise
# conv, then a 5x5 depthwise-separable conv) and 5x5 depthwise-separable
# output convs, at 0.48x the FLOPs of the recipe's CSPNeXtPAFPN at these
# widths (docs/pconv.md).
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
        block_type='pconvnext',
        out_conv='depthwise',
        norm_cfg=dict(type='SyncBN'),
        act_cfg=dict(type='SiLU', inplace=True)))
