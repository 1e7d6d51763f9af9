# FasterNetPAFPN with FasterNet blocks (PConv on a quarter of the channels,
# then a pointwise MLP) and 3x3 output convs in their PConv form.
_base_ = './rtmdet_tiny_fasternet_t0_neck_shapes.py'

model = dict(neck=dict(block_type='fasternet', out_conv='pconv'))
