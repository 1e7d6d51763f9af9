# RetinaNet 1x with FasterNet-S. Not in the paper: AdamW lr 1e-4 with weight
# decay 1e-4, the optimizer PVT and PoolFormer use for RetinaNet.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    './_base_/fasternet.py'
]

custom_imports = _base_.fasternet_imports
default_hooks = _base_.fasternet_hooks

# The FPN keeps RetinaNet's start_level=1: it uses strides 8, 16 and 32.
model = _base_.fasternet_s_fpn

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
