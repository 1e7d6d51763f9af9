# Copyright (c) fasternet_mm contributors. Licensed under the MIT licence.
"""The deploy protocol shared by the blocks, the neck and the backbone.

As in mmpretrain's re-parameterised blocks (``mobileone.py``), a module
with a deploy form has ``switch_to_deploy()`` and a ``deploy`` flag. Here
the deploy form folds each BatchNorm into the conv before it; the folded
numbers would drift under training, so a deployed module refuses
``train(True)``.
"""
from mmcv.cnn import ConvModule
from torch import nn

from .bn_folding import fold_conv_module_norm


class DeployableMixin:
    """``switch_to_deploy()``, the ``deploy`` flag and the refusal to train
    after it, for an ``nn.Module``.

    ``switch_to_deploy()`` walks the module and everything inside it: each
    module with this mixin not yet deployed changes its own layers
    (:meth:`_switch_own_layers`, which a subclass overrides), and the BN of
    each mmcv ``ConvModule`` folds into its conv. Then every one of them is
    flagged ``deploy`` and the module is put in eval mode. Idempotent.
    """

    deploy = False

    def switch_to_deploy(self) -> None:
        """Switch this module and every module inside it to the deploy
        form, in place, and put it in eval mode. Idempotent."""
        deployable = [
            m for m in self.modules()
            if isinstance(m, DeployableMixin) and not m.deploy
        ]
        if deployable:
            for module in list(self.modules()):
                if isinstance(module, ConvModule):
                    fold_conv_module_norm(module)
            for module in deployable:
                module._switch_own_layers()
                module.deploy = True
        self.eval()

    def _switch_own_layers(self) -> None:
        """Put this module's own layers (not those of the deployable
        modules inside it) in their deploy form. Nothing by default."""

    def train(self, mode: bool = True) -> nn.Module:
        if mode and self.deploy:
            raise RuntimeError(
                f'This {type(self).__name__} is in its deploy form (BN folded '
                f'into convs) and cannot train; build a new one to train')
        return super().train(mode)
