# What every FasterNet config here shares. Each config lists this file next
# to its upstream base and picks the pieces up as `_base_.fasternet_*`: the
# names are our own because MMEngine refuses a key (such as default_hooks or
# optim_wrapper) that two sibling bases both define.
fasternet_imports = dict(imports=['fasternet_mm'], allow_failed_imports=False)

# Checkpoints keep the RNG states, so --resume continues exactly, and are
# written to a temporary file and renamed, so a run killed while saving
# still resumes from its last complete checkpoint.
fasternet_hooks = dict(
    checkpoint=dict(type='fasternet_mm.AtomicCheckpointHook'),
    random_states=dict(type='fasternet_mm.RandomStateHook'))

# The FasterNet paper's detection optimizer (no gradient clipping).
fasternet_adamw = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))

# The official ImageNet-1k releases, one per arch.
fasternet_release = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/'  # noqa: E501
fasternet_imagenet = dict(
    t0=fasternet_release + 'fasternet_t0-epoch.281-val_acc1.71.9180.pth',
    t1=fasternet_release + 'fasternet_t1-epoch.291-val_acc1.76.2180.pth',
    t2=fasternet_release + 'fasternet_t2-epoch.289-val_acc1.78.8860.pth',
    s=fasternet_release + 'fasternet_s-epoch.299-val_acc1.81.2840.pth',
    m=fasternet_release + 'fasternet_m-epoch.291-val_acc1.82.9620.pth',
    l=fasternet_release + 'fasternet_l-epoch.299-val_acc1.83.5060.pth')

# Each arch with its ImageNet-1k weights, for a FasterNet backbone:
# `backbone=_base_.fasternet_archs.m`.
fasternet_archs = {
    arch: dict(
        arch=arch, init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    for arch, checkpoint in fasternet_imagenet.items()
}

# FasterNet-S, with the drop-path rate of the paper's Mask R-CNN-S, in place
# of the ResNet-50 of an mmdet FPN detector.
fasternet_s_fpn = dict(
    backbone=dict(
        _delete_=True,
        type='FasterNet',
        drop_path_rate=0.15,
        **fasternet_archs['s']),
    neck=dict(in_channels=[128, 256, 512, 1024]))

# FasterNet-T0's last three stages (strides 8, 16 and 32) in place of a
# one-stage detector's backbone (RTMDet, YOLOX).
fasternet_t0_last_three = dict(
    _delete_=True,
    type='FasterNet',
    out_indices=(1, 2, 3),
    **fasternet_archs['t0'])

# FasterNet in place of a segmentor's backbone, with SyncBN as mmseg's
# recipes train theirs.
fasternet_syncbn = dict(
    _delete_=True,
    type='FasterNet',
    norm_cfg=dict(type='SyncBN', requires_grad=True))
