# The synthetic shapes dataset (tools/make_shapes.py, fasternet_mm.shapes)
# as COCO instances, for the CPU demos and ablations. A config takes these
# pieces by name (`_base_.shapes_train_dataset`, ...) and adds its pipeline
# and batch size, since the model configs it also inherits already hold
# COCO's dataloaders.
shapes_data_root = 'data/shapes/'
shapes_metainfo = dict(
    classes=('circle', 'square', 'triangle'),
    palette=[(220, 20, 60), (0, 128, 255), (60, 180, 75)])
shapes_train_dataset = dict(
    data_root=shapes_data_root,
    metainfo=shapes_metainfo,
    ann_file='annotations/instances_train.json',
    data_prefix=dict(img='train/'))
shapes_test_dataset = dict(
    data_root=shapes_data_root,
    metainfo=shapes_metainfo,
    ann_file='annotations/instances_val.json',
    data_prefix=dict(img='val/'))
shapes_test_ann_file = shapes_data_root + 'annotations/instances_val.json'
# The last step of a test pipeline: the meta keys the evaluator reads.
shapes_test_packing = dict(
    type='PackDetInputs',
    meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
               'scale_factor'))
# The images are small and few: load them in the main process.
shapes_loading = dict(num_workers=0, persistent_workers=False)
