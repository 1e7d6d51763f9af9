# RTMDet-tiny with a FasterNet-T0 backbone and FasterNetPAFPN: mmdet's
# 300-epoch recipe with the backbone's last three stages (strides 8, 16,
# 32) and a PAFPN whose CSP layers have FasterNet blocks and whose 3x3
# output convs are PConv + pointwise conv.
_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'

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
        arch='t0',
        out_indices=(1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/JierunChen/FasterNet/releases/download/v1.0/'  # noqa: E501
            'fasternet_t0-epoch.281-val_acc1.71.9180.pth')),
    neck=dict(
        _delete_=True,
        type='FasterNetPAFPN',
        in_channels=[80, 160, 320],
        out_channels=96,
        num_csp_blocks=1,
        n_div=4,
        norm_cfg=dict(type='SyncBN'),
        act_cfg=dict(type='SiLU', inplace=True)))
