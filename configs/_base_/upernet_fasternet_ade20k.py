# UperNet on ADE20K, 512x512 crops, 160k iterations: the Swin and ConvNeXt
# recipe (AdamW lr 6e-5, weight decay 0.01, no decay on norms, 1500 warm-up
# iterations, then poly decay; 2 images per GPU on 8 GPUs). The FasterNet
# paper reports no segmentation results.
_base_ = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'  # noqa: E501

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
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))

optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True, custom_keys=dict(norm=dict(decay_mult=0.))))
