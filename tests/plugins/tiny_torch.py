"""A small torch predictor as a third-party plugin, for profiling through its calls: a 3x3
conv stem on the image in `start` (once per instance, like an image encoder), a 1x1 conv
head on the stem features plus click disks in `predict`. Random weights, seeded."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TinyTorchPredictor:
    def __init__(self, channels: int = 8):
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.head = nn.Conv2d(channels + 2, 1, 1)
        self.features = None
        self.shape = (0, 0)

    def start(self, sample) -> None:
        image = torch.from_numpy(np.ascontiguousarray(sample.image)).permute(2, 0, 1)
        with torch.inference_mode():
            self.features = self.stem(image[None].float() / 255.0)
        self.shape = sample.image.shape[:2]

    def predict(self, clicks) -> np.ndarray:
        h, w = self.shape
        maps = torch.zeros(1, 2, h, w)
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        for c in clicks:
            disk = (yy - c.y) ** 2 + (xx - c.x) ** 2 <= 25
            maps[0, 0 if c.positive else 1][disk] = 1.0
        with torch.inference_mode():
            logits = self.head(torch.cat([self.features, maps], dim=1))
        return torch.sigmoid(logits)[0, 0].numpy().astype(np.float32)


def make_predictor(**options) -> TinyTorchPredictor:
    return TinyTorchPredictor(**options)
