# The shipped neck with PConv on half the channels instead of a quarter.
_base_ = './rtmdet_tiny_fasternet_t0_neck_shapes.py'

model = dict(neck=dict(n_div=2))
