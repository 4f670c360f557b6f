"""Clicks as the network sees them, and their B x 2M x 3 tensor encoding.

Reproduces `isegm/inference/predictors/base.py:BasePredictor.get_points_nd` (RITM b9b4460,
SimpleClick f33112e; PROTOCOL.md section 6.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from bench.sample import Click

PAD_ROW = (-1, -1, -1)


class NetClick(NamedTuple):
    """A click in the frame of the network input (after zoom-in / flip).

    `row`/`col` stay Python ints until a transform maps them, then they are floats: the official
    code then holds numpy float64 values, and that type decides the tensor dtype.
    """

    row: int | float
    col: int | float
    index: int  # chronological click number, 0-based
    positive: bool


def net_clicks(clicks: Sequence[Click]) -> list[NetClick]:
    """Harness clicks (original pixels) -> untransformed network clicks, numbered in order."""
    return [NetClick(int(c.y), int(c.x), i, bool(c.positive)) for i, c in enumerate(clicks)]


def _is_float(value: object) -> bool:
    return isinstance(value, (float, np.floating))


def points_tensor(
    click_lists: Sequence[Sequence[NetClick]],
    net_clicks_limit: int | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """B x 2M x 3 rows (row, col, index): positives first, then negatives, (-1,-1,-1) padded.

    M is the largest positive or negative count over the *full* lists, capped by
    `net_clicks_limit` and at least 1; each list is truncated to its first `net_clicks_limit`
    clicks before splitting. The dtype follows torch's inference on the official values:
    int64 for untransformed integer clicks, float64 once zoom-in has mapped them (the dtype
    only matters through DistMaps' rounding, PROTOCOL.md section 7.1).
    """
    counts = []
    for clicks in click_lists:
        n_pos = sum(c.positive for c in clicks)
        counts += [n_pos, len(clicks) - n_pos]
    m = max(counts, default=0)
    if net_clicks_limit is not None:
        m = min(net_clicks_limit, m)
    m = max(1, m)

    rows = []
    any_float = False
    for clicks in click_lists:
        kept = list(clicks[:net_clicks_limit])
        pos = [(c.row, c.col, c.index) for c in kept if c.positive]
        neg = [(c.row, c.col, c.index) for c in kept if not c.positive]
        any_float |= any(_is_float(c.row) or _is_float(c.col) for c in kept)
        rows.append(pos + [PAD_ROW] * (m - len(pos)) + neg + [PAD_ROW] * (m - len(neg)))
    dtype = torch.float64 if any_float else torch.int64
    return torch.tensor(rows, dtype=dtype, device=device).reshape(len(click_lists), 2 * m, 3)


def batch_points(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate several instances' points tensors (each B_i x 2M_i x 3) along the batch.

    Each tensor is padded to the largest M the way `points_tensor` pads one batch: (-1, -1, -1)
    rows after the M_i positives and after the M_i negatives, so row j < M stays positive. The
    disk maps drop padding rows (`click_maps.disk_maps`: max(row, col) < 0), so a network that
    draws its clicks that way gives the same output for the padded tensor. Mixed dtypes become
    float64: integer click coordinates (< 2^24) are exact in float64, and DistMaps' float64
    difference rounded to float32 then equals the float32 difference of the integer path.
    """
    if not tensors:
        raise ValueError("batch_points needs at least one points tensor")
    m = max(t.shape[1] // 2 for t in tensors)
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    padded = []
    for t in tensors:
        half = t.shape[1] // 2
        t = t.to(dtype)
        if half < m:
            pad = torch.tensor(PAD_ROW, dtype=dtype, device=t.device).expand(
                t.shape[0], m - half, 3
            )
            t = torch.cat((t[:, :half], pad, t[:, half:], pad), dim=1)
        padded.append(t)
    return torch.cat(padded, dim=0)
