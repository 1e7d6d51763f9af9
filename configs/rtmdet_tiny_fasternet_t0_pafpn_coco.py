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

# The neck keeps the recipe's CSPNeXtPAFPN settings (96 channels, one
# block per CSP layer, SyncBN, SiLU) and changes its type and inputs.
model = dict(
    backbone=_base_.fasternet_t0_last_three,
    neck=dict(type='FasterNetPAFPN', in_channels=[80, 160, 320]))
