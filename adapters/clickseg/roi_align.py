"""RoIAlign with torchvision's semantics, written in torch (torchvision cannot be installed).

FocalClick's refiner calls `torchvision.ops.roi_align` (`isegm/model/is_segformer_model.py` and
`is_hrnet_model.py`: `SegFormerModel.refine` / `HRNetModel.refine`, `aligned=True`,
`sampling_ratio=-1`). This module reproduces torchvision's CPU kernel
(`torchvision/csrc/ops/cpu/roi_align_kernel.cpp`, `roi_align_forward_kernel_impl` and
`pre_calc_for_bilinear_interpolate`) operation by operation in float32, as the golden fixture's
stand-in does (golden/clickseg/README.md, Provenance):

* box corners are multiplied by `spatial_scale` in double precision, the 0.5 offset of
  `aligned=True` subtracted, and the result rounded to the input dtype;
* `bin = roi_size / pooled_size`; the sampling grid per bin is `sampling_ratio` or, when that is
  <= 0, `ceil(roi_size / pooled_size)`; count = max(grid_h * grid_w, 1);
* sample `y = start + ph * bin + (iy + 0.5) * bin / grid_h` (x likewise);
* a sample with `y < -1`, `y > H`, `x < -1` or `x > W` contributes 0; otherwise `y <= 0 -> 0`,
  `y_low = int(y)`, and at the last row `y_low = y_high = H - 1, y = y_low`;
* `w1..w4 = hy*hx, hy*lx, ly*hx, ly*lx` and `w1*v1 + w2*v2 + w3*v3 + w4*v4` summed over the
  grid in (iy, ix) order, then divided by the count.

The bins of one box are computed together (one gather per grid sample), boxes one at a time.
"""

from __future__ import annotations

import math

import torch

__all__ = ["roi_align"]


def _axis(
    start: float,
    size: torch.Tensor,
    pooled: int,
    grid: int,
    index: int,
    limit: int,
    device: torch.device,
) -> tuple[torch.Tensor, ...]:
    """Per-bin sample positions of grid index `index` along one axis, and their bilinear parts.

    Returns (valid, low, high, l, h): validity of each of the `pooled` samples, the two source
    indices and the two weights (float32), following `pre_calc_for_bilinear_interpolate`.
    """
    f32 = torch.float32
    start_t = torch.tensor(start, dtype=f32, device=device)
    bin_size = size / pooled  # float32 / int -> float32
    bins = torch.arange(pooled, dtype=f32, device=device)
    offset = torch.tensor(index + 0.5, dtype=f32, device=device) * bin_size / grid
    pos = (start_t + bins * bin_size) + offset
    valid = (pos >= -1.0) & (pos <= limit)
    pos = torch.where(pos <= 0, torch.zeros_like(pos), pos)
    low = pos.to(torch.int64)  # truncation toward zero, pos >= 0 here
    last = low >= limit - 1
    low = torch.where(last, torch.full_like(low, limit - 1), low)
    high = torch.where(last, low, low + 1)
    pos = torch.where(last, low.to(f32), pos)
    frac = pos - low.to(f32)
    return valid, low, high, frac, 1.0 - frac


def roi_align(
    input: torch.Tensor,
    boxes: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """K x C x ph x pw features of the K boxes `[batch_index, x1, y1, x2, y2]` (K x 5).

    Same arguments and result as `torchvision.ops.roi_align` with a K x 5 tensor of boxes.
    Computed in float32 (the dtype FocalClick runs in); other dtypes are cast and cast back.
    """
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(f"boxes must be K x 5 [batch, x1, y1, x2, y2], got {tuple(boxes.shape)}")
    pooled_h, pooled_w = (
        (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    )
    dtype = input.dtype
    data = input.to(torch.float32)
    height, width = int(data.shape[2]), int(data.shape[3])
    offset = 0.5 if aligned else 0.0
    rois = boxes.to(torch.float32).cpu().tolist()
    outputs = []
    for batch_index, x1, y1, x2, y2 in rois:
        # float32 corner * double scale - offset, rounded to float32 (kernel's `T roi_start_w`).
        corners = torch.tensor(
            [c * spatial_scale - offset for c in (x1, y1, x2, y2)], dtype=torch.float64
        ).to(torch.float32)
        start_w, start_h, end_w, end_h = corners.tolist()
        roi_w = corners[2] - corners[0]
        roi_h = corners[3] - corners[1]
        if not aligned:
            roi_w = torch.clamp(roi_w, min=1.0)
            roi_h = torch.clamp(roi_h, min=1.0)
        if sampling_ratio > 0:
            grid_h = grid_w = sampling_ratio
        else:
            grid_h = math.ceil(float(roi_h / pooled_h))
            grid_w = math.ceil(float(roi_w / pooled_w))
        count = max(grid_h * grid_w, 1)
        feat = data[int(batch_index)]  # C x H x W
        acc = torch.zeros(
            (feat.shape[0], pooled_h, pooled_w), dtype=torch.float32, device=data.device
        )
        ys = [
            _axis(start_h, roi_h, pooled_h, grid_h, i, height, data.device) for i in range(grid_h)
        ]
        xs = [_axis(start_w, roi_w, pooled_w, grid_w, i, width, data.device) for i in range(grid_w)]
        for y_valid, y_low, y_high, ly, hy in ys:
            rows_low = feat[:, y_low]  # C x ph x W
            rows_high = feat[:, y_high]
            for x_valid, x_low, x_high, lx, hx in xs:
                valid = y_valid[:, None] & x_valid[None, :]
                zero = torch.zeros((), dtype=torch.float32, device=data.device)
                w1 = torch.where(valid, hy[:, None] * hx[None, :], zero)
                w2 = torch.where(valid, hy[:, None] * lx[None, :], zero)
                w3 = torch.where(valid, ly[:, None] * hx[None, :], zero)
                w4 = torch.where(valid, ly[:, None] * lx[None, :], zero)
                v1 = rows_low[:, :, x_low]
                v2 = rows_low[:, :, x_high]
                v3 = rows_high[:, :, x_low]
                v4 = rows_high[:, :, x_high]
                acc = acc + (((w1 * v1 + w2 * v2) + w3 * v3) + w4 * v4)
        outputs.append(acc / count)
    if not outputs:
        return data.new_zeros((0, data.shape[1], pooled_h, pooled_w)).to(dtype)
    return torch.stack(outputs).to(dtype)
