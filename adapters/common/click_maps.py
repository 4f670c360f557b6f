"""The network front end shared by SimpleClick and RITM: image normalisation and click disks.

Reproduces `isegm/model/is_model.py:ISModel.prepare_input/get_coord_features` and
`isegm/model/ops.py:DistMaps` (norm_radius 5, use_disks=True, spatial_scale 1.0, torch path)
of both official repositories (RITM b9b4460, SimpleClick f33112e); PROTOCOL.md section 7.1.
The rounding order matters for bit-exact disks, so it is spelled out below.
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DISK_RADIUS = 5.0
_DROPPED_DIST2 = 1e6  # official value for points that are dropped (after squaring)


def normalize_image(rgb01: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std per channel on a B x 3 x H x W tensor in [0, 1].

    Official `BatchImageNormalize` builds mean/std as float32 tensors and subtracts, then
    divides, in the input's dtype; the float32 constants are cast the same way here.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=rgb01.device)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=rgb01.device)
    mean = mean.to(rgb01.dtype)[None, :, None, None]
    std = std.to(rgb01.dtype)[None, :, None, None]
    return (rgb01 - mean) / std


def _axis_dist2(length: int, coords: torch.Tensor) -> torch.Tensor:
    """Squared distances (float32) from grid 0..length-1 to each coordinate: ... x length.

    Official DistMaps subtracts the click coordinates in place from a float32 grid: with float64
    clicks the difference is computed in float64 and rounded to float32, with integer clicks the
    coordinate is cast to float32 first. `torch.result_type` picks the same computation dtype.
    """
    grid = torch.arange(length, dtype=torch.float32, device=coords.device)
    work = torch.result_type(grid, coords)
    diff = (grid.to(work) - coords.to(work)[..., None]).to(torch.float32)
    return diff * diff


def disk_maps(
    points: torch.Tensor, height: int, width: int, radius: float = DISK_RADIUS
) -> torch.Tensor:
    """B x 2 x H x W float32 click disks: channel 0 positive, channel 1 negative.

    `points` is B x 2M x 3 with rows (row, col, index), the first M positive (PROTOCOL.md 6.5).
    A row is dropped when max(row, col) < 0 (padding rows and clicks left of/above a zoom crop).
    d^2 = float32(row diff)^2 + float32(col diff)^2, summed in float32, min over points,
    disk = d^2 <= radius^2. The per-axis split gives the same float32 values as the official
    full-grid computation because every operation is elementwise.
    """
    if points.dim() != 3 or points.shape[2] != 3 or points.shape[1] % 2:
        raise ValueError(f"points must be B x 2M x 3, got {tuple(points.shape)}")
    batch, rows_total, _ = points.shape
    per_polarity = rows_total // 2
    coords = points[:, :, :2]
    dropped = coords.max(dim=2).values < 0  # B x 2M
    row_d2 = _axis_dist2(height, coords[:, :, 0])  # B x 2M x H
    col_d2 = _axis_dist2(width, coords[:, :, 1])  # B x 2M x W
    threshold = torch.tensor(radius * radius, dtype=torch.float32)
    maps = torch.empty((batch, 2, height, width), dtype=torch.float32, device=points.device)
    for polarity in range(2):
        nearest = torch.full(
            (batch, height, width), _DROPPED_DIST2, dtype=torch.float32, device=points.device
        )
        for j in range(polarity * per_polarity, (polarity + 1) * per_polarity):
            d2 = row_d2[:, j, :, None] + col_d2[:, j, None, :]
            d2 = torch.where(dropped[:, j, None, None], _DROPPED_DIST2, d2)
            nearest = torch.minimum(nearest, d2)
        maps[:, polarity] = (nearest <= threshold).to(torch.float32)
    return maps


def coord_features(
    prev: torch.Tensor, points: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """concat(prev, positive disks, negative disks): B x 3 x H x W, in the official order.

    `prev` is the previous probability map (B x 1 x H x W, not thresholded); the disks are cast
    to its dtype so a half/float64 model gets one dtype.
    """
    disks = disk_maps(points, height, width).to(dtype=prev.dtype, device=prev.device)
    return torch.cat((prev, disks), dim=1)
