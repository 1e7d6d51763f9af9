# The `make demo-seg` job: Semantic FPN with FasterNet-T0 trained from
# scratch on CPU on the synthetic shapes as semantic masks (label 0 is the
# background and counts as a class).
_base_ = '../_base_/fpn_fasternet_ade20k.py'

data_root = 'data/shapes/'
metainfo = dict(
    classes=('background', 'circle', 'square', 'triangle'),
    palette=[(0, 0, 0), (220, 20, 60), (0, 128, 255), (60, 180, 75)])

model = dict(
    # Pad to a multiple of 32 only: mmseg 1.2's CrossEntropyLoss with
    # class_weight fails on padded (ignored) pixels.
    data_preprocessor=dict(size=None, size_divisor=32),
    backbone=dict(
        arch='t0', norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    neck=dict(in_channels=[40, 80, 160, 320], out_channels=64),
    decode_head=dict(
        in_channels=[64, 64, 64, 64],
        channels=64,
        num_classes=4,
        norm_cfg=dict(type='BN', requires_grad=True),
        # Background is ~85% of the pixels; down-weight it so the shape
        # classes are learned within the demo's few hundred iterations.
        loss_decode=dict(class_weight=[0.3, 1.0, 1.0, 1.0])))

# Our masks keep 0 as a real class: no reduce_zero_label, unlike ADE20K.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.png',
    seg_map_suffix='.png',
    reduce_zero_label=False)
train_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        **dataset,
        data_prefix=dict(img_path='train', seg_map_path='seg/train'),
        pipeline=train_pipeline))
test_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **dataset,
        data_prefix=dict(img_path='val', seg_map_path='seg/val'),
        pipeline=test_pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None

max_iters = 600
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=50,
         end=max_iters),
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(window_size=20)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
