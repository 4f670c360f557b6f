"""The fake networks of golden/clickseg/README.md section 4 (FakeFocalNet, FakeCDNet).

Written from the README's specification, in float64 and cast to float32 at the end, so the
official evaluation-time predictors' pipeline can be checked without real weights.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bench.adapters.clickseg.roi_align import roi_align


def acc_kernel(rows: np.ndarray, height: int, width: int, rr: float, amp: float) -> np.ndarray:
    """ACC(rows, h, w, rr, amp): +-amp * max(0, 1 - d^2 / rr^2) summed in row order over rows
    with index >= 0, + for the first half (positive), - for the second.

    Each row only reaches pixels closer than rr, so the kernel is evaluated on that window;
    outside it k = 0 and the running sum is unchanged, which keeps the values identical.
    """
    acc = np.zeros((height, width))
    r2 = rr * rr
    n_pos = rows.shape[0] // 2
    for j, (y, x, index) in enumerate(rows):
        if index < 0:
            continue
        r0, r1 = max(0, math.floor(y - rr)), min(height, math.ceil(y + rr) + 1)
        c0, c1 = max(0, math.floor(x - rr)), min(width, math.ceil(x + rr) + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        yy = np.arange(r0, r1, dtype=np.float64)[:, None] - y
        xx = np.arange(c0, c1, dtype=np.float64)[None, :] - x
        k = np.maximum(0, 1 - (yy * yy + xx * xx) / r2)
        window = acc[r0:r1, c0:c1]
        acc[r0:r1, c0:c1] = window + amp * k if j < n_pos else window - amp * k
    return acc


def _disk_map(rows: np.ndarray, height: int, width: int) -> np.ndarray:
    """2 x h x w: 1 where (Y - y)^2 + (X - x)^2 <= 25 for a valid positive / negative row."""
    out = np.zeros((2, height, width))
    n_pos = rows.shape[0] // 2
    yy = np.arange(height, dtype=np.float64)[:, None]
    xx = np.arange(width, dtype=np.float64)[None, :]
    for j, (y, x, index) in enumerate(rows):
        if index < 0:
            continue
        disk = (yy - y) ** 2 + (xx - x) ** 2 <= 25
        out[0 if j < n_pos else 1][disk] = 1
    return out


class FakeFocalNet:
    """FakeFocalNet: coarse = 6(prev - 0.5) + ACC(points, 0.15 min(h, w), 8) - 1; refine adds
    ACC(cropped points, 0.08 S, 4) + 2(red - 0.5) to the RoIAligned coarse logits."""

    with_prev_mask = True

    def __call__(self, image: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, h, w = image.shape
        rows = points.to(torch.float64).cpu().numpy()
        prev = image[:, 3].to(torch.float64).cpu().numpy()
        out = np.stack(
            [
                6 * (prev[i] - 0.5) + acc_kernel(rows[i], h, w, 0.15 * min(h, w), 8) - 1
                for i in range(b)
            ]
        )
        logits = torch.from_numpy(out[:, None].astype(np.float32))
        feature = torch.zeros((b, 1, h // 4, w // 4))
        return {"instances": logits, "instances_aux": logits, "feature": feature}

    def refine(
        self,
        cropped_image: torch.Tensor,
        cropped_points: torch.Tensor,
        full_feature: torch.Tensor,
        full_logits: torch.Tensor,
        bboxes: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        s = cropped_image.shape[-1]
        coarse = roi_align(full_logits, bboxes, (s, s), 1, aligned=True)
        rows = cropped_points[0].to(torch.float64).cpu().numpy()
        red = cropped_image[0, 0].to(torch.float64).cpu().numpy()
        refined = coarse[0, 0].to(torch.float64).numpy() + acc_kernel(rows, s, s, 0.08 * s, 4)
        refined = refined + 2 * (red - 0.5)
        refined_t = torch.from_numpy(refined[None, None].astype(np.float32))
        return {
            "instances_refined": refined_t,
            "instances_coarse": coarse,
            "trimap": torch.zeros_like(coarse),
        }


class FakeCDNet:
    """FakeCDNet: ACC(points, 0.15 min(h, w), 8) - 1 and its 5-pixel click disks;
    PixelDiffusion = mask + 3(pos - neg disks) + 1.5(red - 0.4)."""

    with_prev_mask = False

    def __call__(self, image: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, h, w = image.shape
        rows = points.to(torch.float64).cpu().numpy()
        logits = np.stack([acc_kernel(rows[i], h, w, 0.15 * min(h, w), 8) - 1 for i in range(b)])
        disks = np.stack([_disk_map(rows[i], h, w) for i in range(b)])
        return {
            "instances": torch.from_numpy(logits[:, None].astype(np.float32)),
            "click_map": torch.from_numpy(disks.astype(np.float32)),
        }

    def PixelDiffusion(  # noqa: N802 - the official method name
        self, image: torch.Tensor, mask: torch.Tensor, click_map: torch.Tensor
    ) -> torch.Tensor:
        m = mask.to(torch.float64)
        cm = click_map.to(torch.float64)
        red = image[:, 0:1].to(torch.float64)
        out = m + 3 * (cm[:, 0:1] - cm[:, 1:2]) + 1.5 * (red - 0.4)
        return out.to(torch.float32)
