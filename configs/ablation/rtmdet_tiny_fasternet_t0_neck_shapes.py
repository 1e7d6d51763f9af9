# The neck ablation of docs/pconv.md: RTMDet-tiny with FasterNet-T0 on the
# shapes dataset with a 320-image validation split (tools/make_shapes.py
# data/shapes_neck --num-val 320), trained as the stock
# ./rtmdet_tiny_shapes.py. Each variant of this folder changes only the
# neck; this one keeps its base's, the shipped FasterNetPAFPN design:
# PConvNeXt blocks (PConv + pointwise conv, then a 5x5 depthwise-separable
# conv) and 5x5 depthwise-separable output convs.
_base_ = './rtmdet_tiny_fasternet_t0_shapes.py'

data_root = 'data/shapes_neck/'
train_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
test_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
