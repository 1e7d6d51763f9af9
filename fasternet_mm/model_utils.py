"""What running a detector or segmentor takes without a dataset or
pretrained weights: the model of a config with random weights
(:func:`build_model`) and a data sample that describes its input image
(:func:`dummy_sample`). The tools, the benchmark and the tests build and
run models with these."""
import copy

from torch import nn


def build_model(cfg) -> nn.Module:
    """The model of ``cfg`` (an mmengine ``Config`` with ``default_scope``
    mmdet or mmseg) with random weights, in train mode, SyncBN layers
    turned into BN. The backbone's ``init_cfg`` is dropped, so that
    ``init_weights()`` would download nothing; ``cfg`` is left as it is."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS, init_default_scope

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    return revert_sync_batchnorm(MODELS.build(model_cfg))


def dummy_sample(scope: str, height: int, width: int):
    """A DetDataSample (``scope='mmdet'``) or SegDataSample for an unpadded,
    unscaled ``height`` x ``width`` image, for predict or tensor mode."""
    meta = dict(
        img_shape=(height, width),
        ori_shape=(height, width),
        pad_shape=(height, width),
        batch_input_shape=(height, width),
        scale_factor=(1.0, 1.0))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        return DetDataSample(metainfo=meta)
    from mmseg.structures import SegDataSample
    return SegDataSample(metainfo=meta)


def unwrap_model(model: nn.Module) -> nn.Module:
    """``model`` without its MMEngine wrapper (DDP and the like), if any."""
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model
