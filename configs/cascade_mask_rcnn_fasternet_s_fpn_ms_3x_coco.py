# Cascade Mask R-CNN, multi-scale training, 3x (36 epochs), FasterNet-S.
# Not in the paper: mmdet's ms-3x schedule with the paper's AdamW settings.
_base_ = 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_ms-3x_coco.py'

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
    neck=dict(in_channels=[128, 256, 512, 1024]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
