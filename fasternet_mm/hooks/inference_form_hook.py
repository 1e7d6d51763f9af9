"""Testing in the deploy form and/or bf16."""
from typing import Optional

from mmengine.hooks import Hook

from ..deploy import switch_to_deploy
from ..model_utils import unwrap_model
from ..precision import use_low_precision
from ..registry import HOOKS


@HOOKS.register_module()
class InferenceFormHook(Hook):
    """Before testing, put the model in the form it is to infer in: its
    deploy form and/or bf16 (``tools/test.py --deploy/--bf16``).

    Args:
        deploy (bool): Fold BN into convs and swap mmcv's RoIAlign for
            GatherRoIAlign (``fasternet_mm.switch_to_deploy``).
        bf16 (str, optional): ``'all'`` runs the backbone, neck and heads
            under bf16 autocast (``fasternet_mm.use_low_precision``),
            ``'backbone'`` the backbone only; None keeps fp32.
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 deploy: bool = True,
                 bf16: Optional[str] = None) -> None:
        if bf16 not in (None, 'all', 'backbone'):
            raise ValueError(
                f"bf16 must be None, 'all' or 'backbone', got {bf16!r}")
        self.deploy = deploy
        self.bf16 = bf16

    def before_test(self, runner) -> None:
        model = unwrap_model(runner.model)
        if self.deploy:
            switch_to_deploy(model)
        if self.bf16 == 'all':
            use_low_precision(model)
        elif self.bf16 == 'backbone':
            use_low_precision(model, ['backbone'])
