# RetinaNet 1x with FasterNet-S. Not in the paper: AdamW lr 1e-4 with weight
# decay 1e-4, the optimizer PVT and PoolFormer use for RetinaNet.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['fasternet_mm'], allow_failed_imports=False)
# Checkpoints keep the RNG states, so --resume continues exactly, and are
# written to a temporary file and renamed, so a run killed while saving
# still resumes from its last complete checkpoint.
default_hooks = dict(
    checkpoint=dict(type='fasternet_mm.AtomicCheckpointHook'),
    random_states=dict(type='fasternet_mm.RandomStateHook'))

model = dict(
    backbone=dict(
        _delete_=True,
        type='FasterNet',
        arch='s',
        drop_path_rate=0.15,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/JierunChen/FasterNet/releases/download/v1.0/'  # noqa: E501
            'fasternet_s-epoch.299-val_acc1.81.2840.pth')),
    # start_level=1: the FPN uses strides 8, 16 and 32.
    neck=dict(in_channels=[128, 256, 512, 1024]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
