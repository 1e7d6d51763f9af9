# The `make demo` job: Mask R-CNN with FasterNet-T0 trained from scratch on
# CPU on the synthetic shapes dataset (fasternet_mm.shapes), in minutes.
# It keeps the real config's structure and makes the CPU path lean: 256-px
# images, 64-channel FPN and heads, 2 mask convs, fewer proposals and
# sampled RoIs, and GatherRoIAlign (fasternet_mm.ops), which computes
# mmcv's RoIAlign 5-15x faster on CPU.
_base_ = [
    '../mask_rcnn_fasternet_t0.py', '../_base_/datasets/shapes_instance.py'
]

data_root = _base_.shapes_data_root
image_scale = (256, 256)
channels = 64

model = dict(
    backbone=dict(init_cfg=None),
    neck=dict(out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(
            out_channels=channels,
            roi_layer=dict(
                _delete_=True,
                type='GatherRoIAlign',
                output_size=7,
                sampling_ratio=2)),
        bbox_head=dict(
            in_channels=channels, fc_out_channels=256, num_classes=3),
        mask_roi_extractor=dict(
            out_channels=channels,
            roi_layer=dict(
                _delete_=True,
                type='GatherRoIAlign',
                output_size=14,
                sampling_ratio=2)),
        mask_head=dict(
            num_convs=2,
            in_channels=channels,
            conv_out_channels=channels,
            num_classes=3)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=600, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=300, max_per_img=100),
        rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    _base_.shapes_test_packing,
]
train_dataloader = dict(
    batch_size=4,
    dataset=dict(**_base_.shapes_train_dataset, pipeline=train_pipeline),
    **_base_.shapes_loading)
test_dataloader = dict(
    batch_size=1,
    dataset=dict(**_base_.shapes_test_dataset, pipeline=test_pipeline),
    **_base_.shapes_loading)
test_evaluator = dict(
    ann_file=_base_.shapes_test_ann_file, metric=['bbox', 'segm'])
# Evaluation is tools/test.py's job: no validation inside training.
val_dataloader = None
val_evaluator = None
val_cfg = None

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[9, 11], gamma=0.1),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
log_processor = dict(window_size=10)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
