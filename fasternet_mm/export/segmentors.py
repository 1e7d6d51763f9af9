"""The end-to-end graph of an mmseg ``EncoderDecoder``, with the modules
that make its upsampling and pyramid pooling export with dynamic sizes."""
import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ExportError
from .ops import integer_divide


class _ScaleUpsample(nn.Module):
    """mmseg's ``Upsample`` by a scale factor, which computes its output
    size in Python ints (constants in a trace) and so freezes the input
    size; ``F.interpolate`` with the same factor keeps the size dynamic and
    gives the same numbers for whole-number factors."""

    def __init__(self, upsample: nn.Module) -> None:
        super().__init__()
        self.scale_factor = upsample.scale_factor
        self.mode = upsample.mode
        self.align_corners = upsample.align_corners

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(
            x,
            scale_factor=self.scale_factor,
            mode=self.mode,
            align_corners=self.align_corners)


class _AdaptiveAveragePool(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two matrix products, which export for
    any input size (the ONNX exporter needs a static size for the pooling
    op itself): output bin i along an axis of n pixels averages pixels
    ``floor(i * n / k)`` to ``ceil((i + 1) * n / k) - 1``, as PyTorch's."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        size = pool.output_size
        self.output_size = tuple(size) if isinstance(size, (tuple, list)) \
            else (size, size)
        if any(s is None for s in self.output_size):
            raise ExportError(f'AdaptiveAvgPool2d({size}) keeps an axis as '
                              f'it is, which is not exportable end to end')

    @staticmethod
    def _weights(pixels: Tensor, bins: int, dtype) -> Tensor:
        """(bins, pixels) averaging weights along one axis."""
        index = torch.arange(bins)[:, None]
        start = integer_divide(index * pixels, bins)
        end = integer_divide((index + 1) * pixels + bins - 1, bins)
        position = torch.arange(pixels)[None, :]
        inside = (position >= start) & (position < end)
        return inside.to(dtype) / (end - start).to(dtype)

    def forward(self, x: Tensor) -> Tensor:
        rows = self._weights(x.shape[2], self.output_size[0], x.dtype)
        columns = self._weights(x.shape[3], self.output_size[1], x.dtype)
        return rows @ x @ columns.transpose(0, 1)


class SegmentorGraph(nn.Module):
    """An mmseg ``EncoderDecoder`` with whole-image inference from image to
    ``label_map`` (the original image's height, width), as mmseg's
    ``predict``: the decode head's logits resized to the input with its
    ``align_corners``, the padding cut off, the logits resized to the
    original image, then the best class of each pixel (for one output
    channel: the sigmoid above the head's ``threshold``).

    It works on a copy of ``segmentor`` whose mmseg ``Upsample`` and
    ``nn.AdaptiveAvgPool2d`` (UperNet's pyramid pooling) are replaced by
    equal modules that export with dynamic sizes."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        kind = type(segmentor).__name__
        if kind != 'EncoderDecoder':
            raise ExportError(f'{kind} is not exportable end to end; '
                              f'EncoderDecoder is')
        mode = (segmentor.test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            raise ExportError(f"model.test_cfg.mode={mode!r}: only 'whole' "
                              f'inference is exportable end to end')
        # A copy: the Upsample swap below must not change the caller's model.
        segmentor = copy.deepcopy(segmentor)
        # Not used by inference: its weights stay out of the file.
        segmentor.auxiliary_head = None
        for parent in list(segmentor.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.AdaptiveAvgPool2d):
                    setattr(parent, name, _AdaptiveAveragePool(child))
                elif type(child).__name__ == 'Upsample' and not child.size:
                    factor = child.scale_factor
                    factors = factor if isinstance(factor, tuple) else (
                        factor, )
                    if any(f != int(f) for f in factors):
                        raise ExportError(
                            f'Upsample by {factor} is not exportable end to '
                            f'end; whole-number factors are')
                    setattr(parent, name, _ScaleUpsample(child))
        self.segmentor = segmentor
        self.eval()

    def forward(self, image: Tensor, image_size: Tensor,
                ori_size: Tensor) -> Tensor:
        head = self.segmentor.decode_head
        logits = head(self.segmentor.extract_feat(image))
        logits = F.interpolate(
            logits,
            size=image.shape[2:],
            mode='bilinear',
            align_corners=head.align_corners)
        # As mmseg's postprocess_result: the padding cut off, the logits
        # resized to the original image, then the best class.
        logits = logits.index_select(2, torch.arange(image_size[0]))
        logits = logits.index_select(3, torch.arange(image_size[1]))
        logits = F.interpolate(
            logits,
            size=(ori_size[0], ori_size[1]),
            mode='bilinear',
            align_corners=head.align_corners)
        if logits.shape[1] == 1:
            return (logits[0, 0].sigmoid() > head.threshold).long()
        return logits[0].argmax(0)
