# Mask R-CNN + FPN, COCO 2017, 1x schedule, with the recipe of the FasterNet
# paper (CVPR 2023, Sec. 4.3): AdamW, weight decay 1e-4, no gradient
# clipping, 500 warm-up iterations, lr steps at epochs 8 and 11, 1333x800
# inputs with random flip, 2 images per GPU on 8 GPUs.
# Arch-neutral: each variant sets the arch and its ImageNet checkpoint, the
# FPN's in_channels and, where the paper changes them, the drop-path rate
# and the learning rate.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', './fasternet.py']

custom_imports = _base_.fasternet_imports
default_hooks = _base_.fasternet_hooks

model = dict(backbone=dict(_delete_=True, type='FasterNet'))

optim_wrapper = _base_.fasternet_adamw

train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
