# The demo (Mask R-CNN-T0 on shapes) with PConv in the FPN, as in
# configs/mask_rcnn_fasternet_t0_pconv_fpn.py: docs/pconv.md compares the two.
_base_ = './mask_rcnn_fasternet_t0_shapes.py'

model = dict(neck=dict(conv_cfg=dict(type='PConv', n_div=4)))
