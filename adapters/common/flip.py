"""Horizontal-flip test-time augmentation of the official evaluation predictors.

Reproduces `isegm/inference/transforms/flip.py:AddHorizontalFlip` (RITM b9b4460, SimpleClick
f33112e; PROTOCOL.md section 6.2). The inverse averages *logits*; the sigmoid comes after.
"""

from __future__ import annotations

import torch

from bench.adapters.common.points import NetClick


def flip_forward(
    image: torch.Tensor, click_lists: list[list[NetClick]]
) -> tuple[torch.Tensor, list[list[NetClick]]]:
    """Batch [x, flip_W(x)] (all channels) and the click lists followed by their mirrors.

    The mirrored col is W' - col - 1 with W' the width of the (zoomed) network input.
    """
    width = image.shape[3]
    batch = torch.cat([image, torch.flip(image, dims=[3])], dim=0)
    mirrored = [[c._replace(col=width - c.col - 1) for c in clicks] for clicks in click_lists]
    return batch, click_lists + mirrored


def flip_inverse(logits: torch.Tensor) -> torch.Tensor:
    """0.5 * (a + flip_W(b)) over the two batch halves, in the official operation order."""
    half = logits.shape[0] // 2
    if logits.shape[0] != 2 * half:
        raise ValueError(f"flip inverse needs an even batch, got {logits.shape[0]}")
    return 0.5 * (logits[:half] + torch.flip(logits[half:], dims=[3]))
