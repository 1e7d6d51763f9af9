"""RoIAlign as a weighted gather, for fast CPU training and inference.

mmcv's CPU RoIAlign loops over channels one sample at a time on one thread;
in a CPU Mask R-CNN training step it takes about half of the time, most of
it in the backward pass, and a quarter of a predict pass. RoIAlign is a
sparse linear map: each output bin is a weighted sum of a few feature-map
pixels (4 bilinear taps for each of its samples). ``F.embedding_bag``
computes exactly that over channels-last features, with vectorised,
multi-threaded kernels for both directions. The numbers match mmcv's average
pooling, for every ``sampling_ratio`` (the adaptive 0 included) and both
``aligned`` settings, to float rounding.
"""
from typing import List, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _axis_taps(coords: Tensor, size: int):
    """Bilinear taps along one axis, with RoIAlign's border rules: a sample
    beyond one pixel outside the map is zero, one nearer is clamped."""
    valid = (coords >= -1) & (coords <= size)
    coords = coords.clamp(min=0)
    low = coords.floor().long().clamp(max=size - 1)
    at_end = low >= size - 1
    high = torch.where(at_end, low, low + 1)
    coords = torch.where(at_end, low.to(coords.dtype), coords)
    frac = coords - low
    return low, high, 1 - frac, frac, valid


def _sample_points(start: Tensor, length: Tensor, bins: int,
                   grid: int) -> Tensor:
    """Sample coordinates along one axis, (R, bins * grid): ``grid`` evenly
    spaced samples in each of ``bins`` bins of each RoI."""
    steps = (torch.arange(bins * grid, device=start.device, dtype=start.dtype)
             + 0.5) / grid
    return start[:, None] + steps * (length / bins)[:, None]


class GatherRoIAlign(nn.Module):
    """Drop-in for ``mmcv.ops.RoIAlign`` with average pooling, 5-15x faster
    on CPU, with the same outputs and gradients up to float rounding.

    In an mmdet config: ``roi_layer=dict(type='GatherRoIAlign',
    output_size=7, sampling_ratio=0)``. ``import fasternet_mm`` makes the
    name visible to mmdet's RoI extractors, which look layers up in
    ``mmcv.ops``; ``fasternet_mm.switch_to_deploy(detector)`` puts it in
    place of every average-pooling ``mmcv.ops.RoIAlign``. On other devices
    than the CPU it calls mmcv's own kernel.

    Args:
        output_size (int | tuple[int, int]): Pooled height and width.
        spatial_scale (float): Scale from image to feature coordinates.
        sampling_ratio (int): Samples per bin along each axis; 0 (mmcv's
            default) gives each RoI ``ceil(roi_size / output_size)``.
            Defaults to 0.
        pool_mode (str): Only ``'avg'``.
        aligned (bool): Shift by half a pixel (Detectron2's RoIAlign v2).
            Defaults to True.
    """

    def __init__(self,
                 output_size: Union[int, Tuple[int, int]],
                 spatial_scale: float = 1.0,
                 sampling_ratio: int = 0,
                 pool_mode: str = 'avg',
                 aligned: bool = True) -> None:
        super().__init__()
        if not isinstance(sampling_ratio, int) or sampling_ratio < 0:
            raise ValueError(f'sampling_ratio must be an int >= 0 (0: '
                             f'adaptive), got {sampling_ratio!r}')
        if pool_mode != 'avg':
            raise ValueError(f"GatherRoIAlign supports pool_mode='avg' only, "
                             f'got pool_mode={pool_mode!r}; use '
                             f'mmcv.ops.RoIAlign for max pooling')
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = sampling_ratio
        self.pool_mode = pool_mode
        self.aligned = bool(aligned)

    def _taps(self, boxes: Tensor, grid_h: int, grid_w: int, height: int,
              width: int) -> Tuple[Tensor, Tensor]:
        """Pixel indices into the flattened (N*H*W) map, and their weights,
        one row per output bin: shapes (R*out_h*out_w, grid_h*grid_w*4).

        ``boxes`` rows are (image index, x1, y1, width, height) in feature
        coordinates."""
        out_h, out_w = self.output_size
        image, x1, y1, roi_w, roi_h = boxes.unbind(1)
        ys = _sample_points(y1, roi_h, out_h, grid_h)
        xs = _sample_points(x1, roi_w, out_w, grid_w)
        y_low, y_high, wy_low, wy_high, y_valid = _axis_taps(ys, height)
        x_low, x_high, wx_low, wx_high, x_valid = _axis_taps(xs, width)
        rows = [(y_low, wy_low), (y_low, wy_low), (y_high, wy_high),
                (y_high, wy_high)]
        cols = [(x_low, wx_low), (x_high, wx_high), (x_low, wx_low),
                (x_high, wx_high)]
        offset = (image.long() * (height * width))[:, None, None]
        index = torch.stack([
            row[:, :, None] * width + col[:, None, :] + offset
            for (row, _), (col, _) in zip(rows, cols)
        ],
                            dim=-1)
        inside = (y_valid[:, :, None] & x_valid[:, None, :]).to(boxes.dtype)
        weight = torch.stack([
            row_w[:, :, None] * col_w[:, None, :] * inside
            for (_, row_w), (_, col_w) in zip(rows, cols)
        ],
                             dim=-1) / (
                                 grid_h * grid_w)

        # (R, out_h*grid_h, out_w*grid_w, 4) -> one row of taps per bin.
        def per_bin(taps: Tensor) -> Tensor:
            taps = taps.reshape(-1, out_h, grid_h, out_w, grid_w, 4)
            return taps.permute(0, 1, 3, 2, 4,
                                5).reshape(-1, grid_h * grid_w * 4)

        return per_bin(index), per_bin(weight)

    def _boxes(self, rois: Tensor) -> Tensor:
        """(image, x1, y1, width, height) in feature coordinates, as mmcv's
        kernel computes them."""
        offset = 0.5 if self.aligned else 0.0
        corners = rois[:, 1:] * self.spatial_scale - offset
        size = corners[:, 2:] - corners[:, :2]
        if self.aligned:
            if bool((size < 0).any()):
                bad = rois[(size < 0).any(1)][0].tolist()
                raise ValueError(f'RoIAlign needs x2 >= x1 and y2 >= y1, '
                                 f'got the RoI {bad}')
        else:  # mmcv's legacy rule: at least one pixel
            size = size.clamp(min=1)
        return torch.cat([rois[:, :1], corners[:, :2], size], dim=1)

    def _grids(self, boxes: Tensor) -> List[Tuple[int, int, Tensor]]:
        """Group RoIs by their sampling grid: (grid_h, grid_w, indices)."""
        if self.sampling_ratio > 0:
            everything = torch.arange(boxes.shape[0], device=boxes.device)
            return [(self.sampling_ratio, self.sampling_ratio, everything)]
        out_h, out_w = self.output_size
        grid = torch.stack(
            [torch.ceil(boxes[:, 4] / out_h),
             torch.ceil(boxes[:, 3] / out_w)], 1).long()
        keys, group = torch.unique(grid, dim=0, return_inverse=True)
        return [(int(h), int(w), torch.nonzero(group == i).flatten())
                for i, (h, w) in enumerate(keys.tolist())]

    def forward(self, features: Tensor, rois: Tensor) -> Tensor:
        if self._uses_mmcv_kernel(features):
            return self._mmcv_kernel(features, rois)
        return self.gather(features, rois)

    @staticmethod
    def _uses_mmcv_kernel(features: Tensor) -> bool:
        """mmcv's kernel is fast off the CPU; the gather wins on it."""
        return features.device.type != 'cpu'

    def _mmcv_kernel(self, features: Tensor, rois: Tensor) -> Tensor:
        """mmcv's ``roi_align``, given what its kernels can read: they
        index raw memory as NCHW whatever the strides say, and take only
        float and half. bf16 maps (``AmpOptimWrapper(dtype='bfloat16')``)
        are pooled in fp32 and handed back in bf16."""
        from mmcv.ops import roi_align
        dtype = features.dtype
        if dtype not in (torch.float32, torch.float16):
            features = features.float()
        pooled = roi_align(features.contiguous(), rois.to(features.dtype),
                           self.output_size, self.spatial_scale,
                           self.sampling_ratio, self.pool_mode, self.aligned)
        return pooled.to(dtype)

    def gather(self, features: Tensor, rois: Tensor) -> Tensor:
        """The weighted-gather form on any device (``forward`` uses it on
        CPU)."""
        num_images, channels, height, width = features.shape
        out_h, out_w = self.output_size
        if rois.shape[0] == 0:
            return features.new_zeros((0, channels, out_h, out_w))
        # One row per pixel. For NCHW maps this copies; without the copy,
        # reshape of a one-image map returns a view with rows 1 element
        # apart and columns H*W apart, which the gather reads 17x slower.
        table = features.permute(0, 2, 3, 1).contiguous().view(-1, channels)
        boxes = self._boxes(rois.to(features.dtype))
        pieces, order = [], []
        for grid_h, grid_w, members in self._grids(boxes):
            if grid_h == 0 or grid_w == 0:  # empty grid: zeros, as in mmcv
                pooled = features.new_zeros(
                    (members.numel() * out_h * out_w, channels))
            else:
                index, weight = self._taps(boxes[members], grid_h, grid_w,
                                           height, width)
                pooled = F.embedding_bag(
                    index, table, per_sample_weights=weight, mode='sum')
            pieces.append(pooled.reshape(-1, out_h, out_w, channels))
            order.append(members)
        pooled = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        if len(order) > 1:
            pooled = pooled[torch.argsort(torch.cat(order))]
        return pooled.permute(0, 3, 1, 2).contiguous()

    def extra_repr(self) -> str:
        return (f'output_size={self.output_size}, '
                f'spatial_scale={self.spatial_scale}, '
                f'sampling_ratio={self.sampling_ratio}, '
                f'aligned={self.aligned}')
