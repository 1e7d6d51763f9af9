"""ONNX export of deployed FasterNet models as they are, without their
post-processing.

:func:`export_onnx` exports a backbone. :func:`build_deploy_model` and
:func:`export_model_onnx` export a whole mmdet detector or mmseg segmentor
as MMDetection and MMSegmentation define its raw outputs (``mode='tensor'``):
the head's maps before any decoding or NMS for a single-stage detector, the
logits for a segmentor. The input is the image as the model's data
preprocessor hands it on: normalised, channels in the model's order, padded.

A two-stage detector's raw outputs come after the RPN's proposals and
their NMS, which do not export without mmdeploy; its ``part='rpn'``
exports everything before that step. Whole detectors (two-stage ones
included) and segmentors with their post-processing export end to end:
:func:`~fasternet_mm.export.end_to_end_graph`.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..checkpoint import read_checkpoint, unwrap_state_dict
from ..checkpoint.layouts import naming_the_file
from ..deploy import switch_to_deploy
from ..errors import CheckpointError, ExportError
from ..model_utils import build_model
from ..models import FasterNet
from .check import ExportCheck, check_outputs, flatten_outputs, other_size

PARTS = ('model', 'rpn')


def trace_to_onnx(module: nn.Module,
                  inputs: Union[torch.Tensor, Tuple[torch.Tensor, ...]],
                  path: str,
                  output_names: List[str],
                  dynamic_axes: Optional[dict],
                  opset: int,
                  input_names: Sequence[str] = ('image', )) -> None:
    """Write ``module`` traced on ``inputs`` (one tensor, or a tuple named
    by ``input_names``; the first is ``image``) to ``path``, with
    TorchScript tracing (``dynamo=False``)."""
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs, )
    with torch.no_grad():
        torch.onnx.export(
            module,
            tuple(inputs),
            path,
            input_names=list(input_names),
            output_names=output_names,
            opset_version=opset,
            dynamic_axes=dynamic_axes,
            dynamo=False)


def export_onnx(model, path, shape, opset=17, dynamic=False):
    """Export ``model`` (deployed, eval) to ``path``; return the example
    input and the PyTorch outputs for checking."""
    image = torch.rand(1, 3, *shape)
    names = [f'stage{i}' for i in model.out_indices]
    axes = None
    if dynamic:
        axes = {'image': {0: 'batch', 2: 'height', 3: 'width'}}
        axes.update({n: {0: 'batch', 2: 'h', 3: 'w'} for n in names})
    with torch.no_grad():
        outputs = model(image)
    trace_to_onnx(model, image, path, names, axes, opset)
    return image, outputs


def build_deploy_model(cfg, checkpoint: Optional[str] = None) -> nn.Module:
    """The detector or segmentor of ``cfg`` (an mmengine ``Config`` with
    ``default_scope`` mmdet or mmseg) with the weights of ``checkpoint``
    (a file or URL of whole-model weights, read weights-only), or random
    ones without it (then nothing is downloaded), in deploy form and eval
    mode."""
    model = build_model(cfg)
    if checkpoint is not None:
        content = read_checkpoint(checkpoint)
        with naming_the_file(checkpoint):
            state_dict = unwrap_state_dict(content)
        fits = f'The checkpoint {checkpoint!r} does not fit the ' \
            f'{type(model).__name__} of the config'
        try:
            missing, unexpected = model.load_state_dict(
                state_dict, strict=False)
        except RuntimeError as err:  # shape mismatches, on many lines
            raise CheckpointError(
                f'{fits}: {" ".join(str(err).split())[:400]}') from None
        if missing or unexpected:
            raise CheckpointError(
                f'{fits}: {len(missing)} missing keys {missing[:5]}, '
                f'{len(unexpected)} unexpected keys {unexpected[:5]}')
    return switch_to_deploy(model)


class TensorOutputs(nn.Module):
    """A detector or segmentor as a module from one image tensor to a flat
    tuple of tensors, which is what ``torch.onnx.export`` takes.

    Args:
        model (nn.Module): An mmdet detector or mmseg segmentor in eval mode.
        part (str): ``'model'``, the raw outputs of ``mode='tensor'``: for
            one output, ``output``; else ``output_i_j``, the j-th tensor
            (one per FPN level for a dense head) of the i-th output (for
            RetinaNet, i=0 class scores and i=1 box deltas). ``'rpn'``, for
            a detector with an RPN: the neck's features ``feature_l`` and the
            RPN head's ``rpn_cls_score_l`` and ``rpn_bbox_pred_l`` per level
            l, all that precedes the proposals' NMS. Defaults to 'model'.
    """

    def __init__(self, model: nn.Module, part: str = 'model') -> None:
        super().__init__()
        if part not in PARTS:
            raise ValueError(f'part must be one of {PARTS}, got {part!r}')
        kind = type(model).__name__
        has_rpn = getattr(model, 'rpn_head', None) is not None
        if part == 'rpn' and not has_rpn:
            raise ExportError(f"part='rpn' needs a detector with an RPN "
                              f"head; {kind} has none: export part='model'")
        if part == 'model' and is_two_stage(model):
            # Without mmdeploy, mmdet 3.3's ONNX box decoding imports the
            # removed mmdet.core, and mmcv 2.1's NMSop has no ONNX symbolic:
            # the tracer records its kernel's sort and drops the NMS.
            raise ExportError(
                f"{kind} is a two-stage detector: its raw outputs come after "
                f"the RPN's proposals and their NMS, which do not export to "
                f"ONNX without mmdeploy. Export part='rpn' (the features and "
                f"the RPN head's raw outputs) and run the rest in PyTorch, "
                f"or export the whole detector with its post-processing "
                f"(tools/export_onnx.py --end-to-end)")
        self.part = part
        if part == 'model':
            self.model = model
        else:
            # Only the modules that the part runs, whose weights the file has.
            self.backbone = model.backbone
            self.neck = getattr(model, 'neck', None)
            self.rpn_head = model.rpn_head
        # A new module trains; torch.onnx.export restores that mode after
        # exporting, and a deployed FasterNet refuses to train.
        self.eval()

    def named_outputs(self, image: torch.Tensor):
        """The outputs for ``image``, as ``(name, tensor)`` pairs."""
        if self.part == 'model':
            return flatten_outputs('output', self.model(image, mode='tensor'))
        features = self.backbone(image)
        if self.neck is not None:
            features = self.neck(features)
        scores, deltas = self.rpn_head(features)
        return flatten_outputs('feature', features) + flatten_outputs(
            'rpn_cls_score', scores) + flatten_outputs('rpn_bbox_pred', deltas)

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(tensor for _, tensor in self.named_outputs(image))


def is_two_stage(model: nn.Module) -> bool:
    """Whether ``model`` is an mmdet two-stage detector."""
    try:
        from mmdet.models.detectors import TwoStageDetector
    except ImportError:  # mmseg only
        return False
    return isinstance(model, TwoStageDetector)


def is_segmentor(model: nn.Module) -> bool:
    """Whether ``model`` is an mmseg segmentor."""
    try:
        from mmseg.models.segmentors import BaseSegmentor
    except ImportError:  # mmdet only
        return False
    return isinstance(model, BaseSegmentor)


def export_model_onnx(model: TensorOutputs,
                      path: str,
                      shape,
                      opset: int = 17,
                      dynamic: bool = False):
    """Export ``model`` to ``path``. Returns a new random image, not the
    traced one, and the PyTorch outputs for it, so that checking them
    catches values the trace froze; with ``dynamic``, the image is of
    :func:`~fasternet_mm.export.check.other_size` (larger), which catches
    frozen sizes. A
    segmentor with ``dynamic`` is refused (:class:`ExportError`)."""
    if dynamic and model.part == 'model' and is_segmentor(model.model):
        # Checked with onnxruntime on mmseg 1.2: the file is wrong at any
        # size but the traced one.
        raise ExportError(
            f'{type(model.model).__name__} cannot be exported with dynamic '
            f'sizes: mmseg resizes its logits to sizes that the ONNX trace '
            f'freezes as constants. Export without --dynamic, at the input '
            f'size you will run it at')
    example = torch.rand(1, 3, *shape)
    with torch.no_grad():
        named = model.named_outputs(example)
        axes = None
        if dynamic:
            axes = {'image': {0: 'batch', 2: 'height', 3: 'width'}}
            for name, tensor in named:
                axes[name] = {0: 'batch'}
                if tensor.dim() == 4:
                    axes[name].update({2: f'{name}_h', 3: f'{name}_w'})
            shape = other_size(shape)
        trace_to_onnx(model, example, path, [name for name, _ in named],
                      axes, opset)
        image = torch.rand(1, 3, *shape)
        return image, model(image)


def export_and_check_backbone(arch: str,
                              path: str,
                              shape: Sequence[int],
                              checkpoint: Optional[str] = None,
                              opset: int = 17,
                              dynamic: bool = False) -> ExportCheck:
    """Export the deployed FasterNet of ``arch`` with the backbone weights
    of ``checkpoint`` (any supported layout; random ones without it) to
    ``path``, traced at ``shape`` (H, W), and check the file
    (:func:`~fasternet_mm.export.check.check_outputs`)."""
    init_cfg = dict(type='Pretrained', checkpoint=checkpoint) \
        if checkpoint else None
    model = FasterNet(arch=arch, init_cfg=init_cfg)
    model.init_weights()
    model.switch_to_deploy()
    image, outputs = export_onnx(model, path, shape, opset, dynamic)
    return check_outputs(path, model, image, outputs, shape)


def export_and_check_model(cfg,
                           path: str,
                           shape: Sequence[int],
                           checkpoint: Optional[str] = None,
                           part: str = 'model',
                           opset: int = 17,
                           dynamic: bool = False) -> ExportCheck:
    """Export the raw outputs of ``part`` of the model of ``cfg``
    (:class:`TensorOutputs`), with the weights of ``checkpoint`` (random
    ones without it), to ``path``, traced at ``shape`` (H, W), and check
    the file (:func:`~fasternet_mm.export.check.check_outputs`; with
    ``dynamic``, at another size)."""
    model = TensorOutputs(build_deploy_model(cfg, checkpoint), part)
    image, outputs = export_model_onnx(model, path, shape, opset, dynamic)
    return check_outputs(path, model, image, outputs, shape)
