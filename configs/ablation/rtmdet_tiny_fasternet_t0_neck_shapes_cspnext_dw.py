# mmdet's CSPNeXtPAFPN with every 3x3 conv depthwise-separable: the
# comparator that needs no new code.
_base_ = './rtmdet_tiny_fasternet_t0_neck_shapes_cspnext.py'

model = dict(neck=dict(use_depthwise=True))
