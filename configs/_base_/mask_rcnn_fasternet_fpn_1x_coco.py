# Mask R-CNN + FPN, COCO 2017, 1x schedule, with the recipe of the FasterNet
# paper (CVPR 2023, Sec. 4.3): AdamW, weight decay 1e-4, no gradient
# clipping, 500 warm-up iterations, lr steps at epochs 8 and 11, 1333x800
# inputs with random flip, 2 images per GPU on 8 GPUs.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

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
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False),
    neck=dict(in_channels=[128, 256, 512, 1024]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))

train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
