# The neck ablation of docs/pconv.md: RTMDet-tiny with FasterNet-T0 on the
# shapes dataset with a 320-image validation split (tools/make_shapes.py
# data/shapes_neck --num-val 320), trained as the stock
# ./rtmdet_tiny_shapes.py. Each variant of this folder changes only
# the neck; this one is the shipped FasterNetPAFPN design: PConvNeXt blocks
# (PConv + pointwise conv, then a 5x5 depthwise-separable conv) and 5x5
# depthwise-separable output convs.
_base_ = './rtmdet_tiny_fasternet_t0_shapes.py'

data_root = 'data/shapes_neck/'
model = dict(
    neck=dict(
        _delete_=True,
        type='FasterNetPAFPN',
        in_channels=[80, 160, 320],
        out_channels=96,
        num_csp_blocks=1,
        n_div=4,
        block_type='pconvnext',
        out_conv='depthwise',
        norm_cfg=dict(type='SyncBN'),
        act_cfg=dict(type='SiLU', inplace=True)))
train_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
test_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
