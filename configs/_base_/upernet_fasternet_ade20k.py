# UperNet on ADE20K, 512x512 crops, 160k iterations: the Swin and ConvNeXt
# recipe (AdamW lr 6e-5, weight decay 0.01, no decay on norms, 1500 warm-up
# iterations, then poly decay; 2 images per GPU on 8 GPUs). The FasterNet
# paper reports no segmentation results.
# Arch-neutral: each variant sets the arch and its ImageNet checkpoint (S
# also the drop-path rate of the paper's detectors), and the heads'
# in_channels.
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',  # noqa: E501
    './fasternet.py'
]

custom_imports = _base_.fasternet_imports
default_hooks = _base_.fasternet_hooks

model = dict(backbone=_base_.fasternet_syncbn)

optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True, custom_keys=dict(norm=dict(decay_mult=0.))))
