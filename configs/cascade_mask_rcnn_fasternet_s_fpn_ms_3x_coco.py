# Cascade Mask R-CNN, multi-scale training, 3x (36 epochs), FasterNet-S.
# Not in the paper: mmdet's ms-3x schedule with the paper's AdamW settings.
_base_ = [
    'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_ms-3x_coco.py',
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
    neck=dict(in_channels=[128, 256, 512, 1024]))

optim_wrapper = _base_.fasternet_adamw
