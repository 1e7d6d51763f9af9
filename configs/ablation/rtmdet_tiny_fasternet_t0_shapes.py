# RTMDet-tiny with FasterNet-T0 and FasterNetPAFPN (as in
# configs/rtmdet_tiny_fasternet_t0_pafpn_coco.py) on the shapes dataset,
# trained exactly as the stock rtmdet_tiny_shapes.py it is compared with.
_base_ = './rtmdet_tiny_shapes.py'

model = dict(
    backbone=dict(_base_.fasternet_t0_last_three, init_cfg=None),
    neck=dict(type='FasterNetPAFPN', in_channels=[80, 160, 320]))
