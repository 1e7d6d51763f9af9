# Mask R-CNN-T0 with PConv in the FPN: each 3x3 output conv becomes PConv
# on a quarter of the channels followed by a pointwise conv (the T-shaped
# receptive field, fasternet_mm/models/layers/partial_conv.py); the 1x1
# lateral convs stay plain.
_base_ = './mask_rcnn_fasternet_t0.py'

model = dict(neck=dict(conv_cfg=dict(type='PConv', n_div=4)))
