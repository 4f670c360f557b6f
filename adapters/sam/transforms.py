"""The official SAM-family predictors' image and point transforms, without torchvision.

Each function does what the official predictor does through torchvision, with the primitive
torchvision itself ends in (torchvision >= 0.17 source, unchanged through 0.2x:
`transforms/functional.py` `resize` / `to_pil_image` / `to_tensor` / `normalize`,
`transforms/_functional_pil.py` `resize`, `transforms/_functional_tensor.py` `resize` /
`normalize`):

* SAM (`segment_anything/utils/transforms.py`, `ResizeLongestSide.apply_image`):
  `np.array(resize(to_pil_image(image), (h, w)))`. `to_pil_image` of an H x W x 3 uint8 array is
  `Image.fromarray(image, "RGB")`; `resize` of a PIL image returns it unchanged when the size
  already matches, else `img.resize((w, h), Image.BILINEAR)` (PIL always antialiases).
  Points: `apply_coords` scales x by new_w / old_w and y by new_h / old_h in float64, then the
  predictor casts to float32.
* SAM 2 (`sam2/utils/transforms.py`, `SAM2Transforms`): `ToTensor` (H x W x 3 uint8 -> 3 x H x W
  float32 / 255), `Resize((1024, 1024))` (unchanged when already that size, else
  `F.interpolate(bilinear, align_corners=False, antialias=True)` on a batch of one), then
  `Normalize(mean, std)` (`(x - mean) / std` with float32 mean/std per channel), all on the CPU
  before the tensor moves to the model's device, as `SAM2ImagePredictor.set_image` does.
  Points: float32 x / W, y / H, times 1024 (`transform_coords(normalize=True)`).

tests/test_sam_official.py checks these against the official predictors end to end (and
against torchvision itself where it imports).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SAM2_MEAN = (0.485, 0.456, 0.406)  # SAM2Transforms.mean
SAM2_STD = (0.229, 0.224, 0.225)  # SAM2Transforms.std


def sam_preprocess_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """`ResizeLongestSide.get_preprocess_shape`: (h, w) with the longest side `long_side`."""
    scale = long_side * 1.0 / max(height, width)
    new_h, new_w = height * scale, width * scale
    return int(new_h + 0.5), int(new_w + 0.5)


def sam_resized_image(image: np.ndarray, long_side: int) -> np.ndarray:
    """`ResizeLongestSide.apply_image`: H x W x 3 uint8 RGB -> resized uint8 (PIL bilinear)."""
    height, width = image.shape[:2]
    new_h, new_w = sam_preprocess_shape(height, width, long_side)
    if (new_h, new_w) == (height, width):
        return image
    resized = Image.fromarray(image, "RGB").resize((new_w, new_h), Image.BILINEAR)
    return np.array(resized)


def sam_point_coords(
    points_xy: np.ndarray, original_size: tuple[int, int], long_side: int
) -> np.ndarray:
    """`ResizeLongestSide.apply_coords`: (N, 2) x, y in original pixels -> resized, float64."""
    old_h, old_w = original_size
    new_h, new_w = sam_preprocess_shape(old_h, old_w, long_side)
    coords = np.array(points_xy, dtype=float)
    coords[..., 0] = coords[..., 0] * (new_w / old_w)
    coords[..., 1] = coords[..., 1] * (new_h / old_h)
    return coords


def sam2_input_tensor(image: np.ndarray, resolution: int) -> torch.Tensor:
    """`SAM2Transforms.__call__`: H x W x 3 uint8 RGB -> 3 x R x R float32, on the CPU."""
    tensor = torch.from_numpy(image.transpose((2, 0, 1))).contiguous()
    tensor = tensor.to(dtype=torch.float32).div(255)
    if tuple(tensor.shape[-2:]) != (resolution, resolution):
        tensor = F.interpolate(
            tensor.unsqueeze(0),
            size=[resolution, resolution],
            mode="bilinear",
            align_corners=False,
            antialias=True,
        ).squeeze(0)
    mean = torch.as_tensor(SAM2_MEAN, dtype=tensor.dtype).view(-1, 1, 1)
    std = torch.as_tensor(SAM2_STD, dtype=tensor.dtype).view(-1, 1, 1)
    return tensor.clone().sub_(mean).div_(std)


def sam2_point_coords(
    points_xy: np.ndarray, original_size: tuple[int, int], resolution: int, device: torch.device
) -> torch.Tensor:
    """`SAM2Transforms.transform_coords(normalize=True)`: (N, 2) x, y -> float32 model frame."""
    height, width = original_size
    coords = torch.as_tensor(points_xy, dtype=torch.float, device=device).clone()
    coords[..., 0] = coords[..., 0] / width
    coords[..., 1] = coords[..., 1] / height
    return coords * resolution
