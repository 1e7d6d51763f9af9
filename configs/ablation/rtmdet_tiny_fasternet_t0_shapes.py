# RTMDet-tiny with FasterNet-T0 and FasterNetPAFPN (as in
# configs/rtmdet_tiny_fasternet_t0_pafpn_coco.py) on the shapes dataset,
# trained exactly as the stock rtmdet_tiny_shapes.py it is compared with.
_base_ = './rtmdet_tiny_shapes.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='FasterNet',
        arch='t0',
        out_indices=(1, 2, 3),
        init_cfg=None),
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
