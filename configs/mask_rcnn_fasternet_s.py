# Paper Table 4 recipe.
_base_ = './_base_/mask_rcnn_fasternet_fpn_1x_coco.py'

model = _base_.fasternet_s_fpn
