# Cascade Mask R-CNN, multi-scale training, 3x (36 epochs), FasterNet-S.
# Not in the paper: mmdet's ms-3x schedule with the paper's AdamW settings.
_base_ = [
    'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_ms-3x_coco.py',
    './_base_/fasternet.py'
]

custom_imports = _base_.fasternet_imports
default_hooks = _base_.fasternet_hooks

model = _base_.fasternet_s_fpn

optim_wrapper = _base_.fasternet_adamw
