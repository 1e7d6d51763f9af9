# YOLOX-s with a FasterNet-T0 backbone and FasterNetPAFPN: mmdet's
# 300-epoch recipe with the backbone's last three stages (strides 8, 16,
# 32) and FasterNetPAFPN: CSP layers of PConvNeXt blocks (PConv + pointwise
# conv, then a 5x5 depthwise-separable conv) and 5x5 depthwise-separable
# output convs where YOLOXPAFPN has 1x1 convs: 0.90G FLOPs against
# YOLOXPAFPN's 1.17G at these widths (docs/pconv.md).
_base_ = ['mmdet::yolox/yolox_s_8xb8-300e_coco.py', './_base_/fasternet.py']

custom_imports = _base_.fasternet_imports
default_hooks = _base_.fasternet_hooks

# YOLOXPAFPN's width and activation; its BN settings are FasterNetPAFPN's
# default.
model = dict(
    backbone=_base_.fasternet_t0_last_three,
    neck=dict(
        _delete_=True,
        type='FasterNetPAFPN',
        in_channels=[80, 160, 320],
        out_channels=128,
        act_cfg=dict(type='Swish')))
