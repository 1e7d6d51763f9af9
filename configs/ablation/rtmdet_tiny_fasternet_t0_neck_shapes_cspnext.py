# The control: mmdet's stock CSPNeXtPAFPN at the same widths.
_base_ = './rtmdet_tiny_fasternet_t0_neck_shapes.py'

model = dict(
    neck=dict(
        _delete_=True,
        type='CSPNeXtPAFPN',
        in_channels=[80, 160, 320],
        out_channels=96,
        num_csp_blocks=1,
        expand_ratio=0.5,
        norm_cfg=dict(type='SyncBN'),
        act_cfg=dict(type='SiLU', inplace=True)))
