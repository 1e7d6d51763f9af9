"""Testing in the deploy form and/or under mixed precision (amp)."""
from typing import Optional

from mmengine.hooks import Hook

from ..deploy import switch_to_deploy
from ..deprecation import deprecated_alias
from ..model_utils import unwrap_model
from ..precision import use_amp
from ..registry import HOOKS


@HOOKS.register_module()
class InferenceFormHook(Hook):
    """Before testing, put the model in the form it is to infer in: its
    deploy form and/or mixed precision by parts (``tools/test.py
    --deploy/--amp``).

    Args:
        deploy (bool): Fold BN into convs and swap mmcv's RoIAlign for
            GatherRoIAlign (``fasternet_mm.switch_to_deploy``).
        amp (str, optional): ``'all'`` runs the backbone, neck and heads
            under bf16 autocast (``fasternet_mm.use_amp``), ``'backbone'``
            the backbone only; None keeps fp32.
        bf16 (str, optional): Deprecated name of ``amp``.
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 deploy: bool = True,
                 amp: Optional[str] = None,
                 bf16: Optional[str] = None) -> None:
        amp = deprecated_alias('InferenceFormHook', 'bf16', bf16, 'amp', amp,
                               FutureWarning)
        if amp not in (None, 'all', 'backbone'):
            raise ValueError(
                f"amp must be None, 'all' or 'backbone', got {amp!r}")
        self.deploy = deploy
        self.amp = amp

    def before_test(self, runner) -> None:
        model = unwrap_model(runner.model)
        if self.deploy:
            switch_to_deploy(model)
        if self.amp == 'all':
            use_amp(model)
        elif self.amp == 'backbone':
            use_amp(model, ['backbone'])
