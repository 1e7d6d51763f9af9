# Semantic FPN on ADE20K, 512x512 crops, 40k iterations, AdamW lr 2e-4 with
# weight decay 1e-4 and a poly schedule, 4 images per GPU on 8 GPUs (total
# batch 32): the PoolFormer and PVT recipe. The FasterNet paper reports no
# segmentation results.
_base_ = 'mmseg::poolformer/fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py'

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
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    neck=dict(in_channels=[128, 256, 512, 1024]))

# fp32, as in the PoolFormer paper; pass --amp to tools/train.py for AMP.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
