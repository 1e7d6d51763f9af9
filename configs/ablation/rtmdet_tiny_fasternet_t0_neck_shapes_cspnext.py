# The control: mmdet's stock CSPNeXtPAFPN at the same widths (the base's
# neck holds the stock neck's settings and FasterNet-T0's widths).
_base_ = './rtmdet_tiny_fasternet_t0_neck_shapes.py'

model = dict(neck=dict(type='CSPNeXtPAFPN'))
