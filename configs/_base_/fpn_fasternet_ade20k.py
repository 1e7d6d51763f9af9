# Semantic FPN on ADE20K, 512x512 crops, 40k iterations, AdamW lr 2e-4 with
# weight decay 1e-4 and a poly schedule, 4 images per GPU on 8 GPUs (total
# batch 32): the PoolFormer and PVT recipe. The FasterNet paper reports no
# segmentation results.
# Arch-neutral: each variant sets the arch and its ImageNet checkpoint (S
# also the drop-path rate of the paper's detectors), and the FPN's
# in_channels.
_base_ = [
    'mmseg::poolformer/fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py',
    './fasternet.py'
]

custom_imports = _base_.fasternet_imports
default_hooks = _base_.fasternet_hooks

model = dict(backbone=_base_.fasternet_syncbn)

# fp32, as in the PoolFormer paper; pass --amp to tools/train.py for AMP.
optim_wrapper = _base_.fasternet_adamw
