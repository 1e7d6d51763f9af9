"""Mixed-precision (amp) training on a CPU: bf16 autocast by parts."""
from mmengine.hooks import Hook

from ..model_utils import unwrap_model
from ..precision import use_amp, use_fp32
from ..registry import HOOKS


@HOOKS.register_module()
class AmpTrainingHook(Hook):
    """Mixed-precision training on a CPU (``tools/train.py --amp``): the
    backbone, neck and heads run under bf16 autocast, while their predictor
    layers, the losses, RoIAlign, NMS and the other box and mask
    post-processing stay fp32 (:func:`fasternet_mm.use_amp`). The weights
    and the optimizer stay fp32. bf16 has fp32's exponent range, so no loss
    scaler is needed. Validation inside training runs in fp32.

    MMEngine's ``AmpOptimWrapper`` runs on CUDA, NPU, MLU and MUSA only; on
    those, ``--amp`` keeps it (fp16 with a dynamic loss scale).
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.training = False

    def before_train(self, runner) -> None:
        self.training = True
        parts = use_amp(unwrap_model(runner.model))
        runner.logger.info(f'--amp: training {parts} under bf16 autocast; '
                           f'predictor layers, losses and post-processing '
                           f'in fp32')

    def before_val(self, runner) -> None:
        use_fp32(unwrap_model(runner.model))

    def after_val(self, runner) -> None:
        if self.training:
            use_amp(unwrap_model(runner.model))

    def after_train(self, runner) -> None:
        self.training = False
        use_fp32(unwrap_model(runner.model))
