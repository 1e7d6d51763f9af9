# RetinaNet 1x with FasterNet-S. Not in the paper: AdamW lr 1e-4 with weight
# decay 1e-4, the optimizer PVT and PoolFormer use for RetinaNet.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    './_base_/fasternet.py'
]

custom_imports = _base_.fasternet_imports
default_hooks = _base_.fasternet_hooks

model = dict(
    backbone=dict(
        _delete_=True,
        type='FasterNet',
        arch='s',
        drop_path_rate=0.15,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained', checkpoint=_base_.fasternet_imagenet.s)),
    # start_level=1: the FPN uses strides 8, 16 and 32.
    neck=dict(in_channels=[128, 256, 512, 1024]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
