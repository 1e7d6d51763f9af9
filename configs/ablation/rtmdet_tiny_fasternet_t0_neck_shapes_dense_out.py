# The shipped neck with dense 3x3 output convs, as CSPNeXtPAFPN's.
_base_ = './rtmdet_tiny_fasternet_t0_neck_shapes.py'

model = dict(neck=dict(out_conv='dense'))
