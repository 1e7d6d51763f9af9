# Stock RTMDet-tiny (mmdet's config: CSPNeXt backbone, CSPNeXtPAFPN) trained
# from scratch on CPU on the shapes dataset, the baseline of the PConv-neck
# comparison in docs/pconv.md (rtmdet_tiny_fasternet_t0_shapes.py changes
# only the backbone and the neck).
# The CPU path: 256-px images, batch 16, 20 epochs (300 iterations), the
# recipe's optimizer (AdamW 4e-3) with a short warm-up and the cosine tail
# over the second half. The pipeline is the recipe's last-stage one without
# random resize and crop: Mosaic and MixUp (the recipe switches them off for
# its last 20 of 300 epochs) only slow down so short a schedule.
_base_ = [
    'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
    '../_base_/datasets/shapes_instance.py', '../_base_/fasternet.py'
]

custom_imports = _base_.fasternet_imports

data_root = _base_.shapes_data_root
image_size = (256, 256)

model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=3))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    _base_.shapes_test_packing,
]
train_dataloader = dict(
    batch_size=16,
    pin_memory=False,
    dataset=dict(**_base_.shapes_train_dataset, pipeline=train_pipeline),
    **_base_.shapes_loading)
test_dataloader = dict(
    batch_size=1,
    dataset=dict(**_base_.shapes_test_dataset, pipeline=test_pipeline),
    **_base_.shapes_loading)
test_evaluator = dict(ann_file=_base_.shapes_test_ann_file)
# Evaluation is tools/test.py's job: no validation inside training.
val_dataloader = None
val_evaluator = None
val_cfg = None

max_epochs = 20
train_cfg = dict(
    max_epochs=max_epochs, val_interval=max_epochs, dynamic_intervals=None)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
        end=30),
    dict(
        type='CosineAnnealingLR',
        eta_min=4e-3 * 0.05,
        begin=max_epochs // 2,
        end=max_epochs,
        T_max=max_epochs - max_epochs // 2,
        by_epoch=True,
        convert_to_iter_based=True),
]
# The recipe's EMA, without its switch to the last-stage pipeline.
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        priority=49),
]
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(
        type='fasternet_mm.AtomicCheckpointHook',
        interval=max_epochs,
        max_keep_ckpts=1),
    random_states=dict(type='fasternet_mm.RandomStateHook'))
log_processor = dict(window_size=5)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
