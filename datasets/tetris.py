"""TETRIS: 2,000 images with 2,531 instances in 24-bit RGB id masks (RClicks).

Official loader: RClicks `isegm/isegm/data/datasets/tetris.py` `TETRISDataset(path, args,
max_side_size=2048)` (golden/metrics/README.md section 5c): images `sorted(images/*.*)`, the
mask `masks/<name>.png` (the image name with its last suffix replaced). The colour read gives
BGR, so an instance id is `B*65536 + G*256 + R` of the file's RGB pixel; the instances are
the non-zero ids in ascending order, with no ignore label. The longest side is capped at
`max_side` (2,048; `tetris,max_side=N` to change) as RClicks resizes: the image with
`cv2.resize` INTER_LINEAR to `int(other / long * target + 0.5)`, the ids one by one (ascending,
later ids overwrite earlier ones) as nearest-resized indicator masks. Instance ids are
`<image stem>#<id>` (RClicks names them `<stem>_______<id>`).

RClicks' split: `n_samples` (its `--n-samples`) evaluates the first N images of that order;
`tetris,n_samples=N` does the same and the manifest records it.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from bench.datasets import DatasetSpec, register
from bench.datasets._folders import FolderLayout, check_folder_layout
from bench.datasets._io import make_samples, matching_entries, read_color, read_rgb
from bench.sample import Sample, SampleError, SampleRef

LAYOUT = FolderLayout(images="images", masks="masks")
MAX_SIDE = 2048


def encode_ids(bgr: np.ndarray) -> np.ndarray:
    """The official `m[..., 0] * 65536 + m[..., 1] * 256 + m[..., 2]` on the BGR read."""
    m = bgr.astype(np.int32)
    return m[:, :, 0] * 65536 + m[:, :, 1] * 256 + m[:, :, 2]


def limited_size(h: int, w: int, max_side: int) -> tuple[int, int]:
    """RClicks `limit_longest_size`: long side min(long, max), the other rounded half up."""
    if h > w:
        th = min(h, max_side)
        return th, int(w / h * th + 0.5)
    tw = min(w, max_side)
    return int(h / w * tw + 0.5), tw


def aligned_resize(ids: np.ndarray, h: int, w: int) -> np.ndarray:
    """RClicks `aligned_resize`: each id's indicator resized (INTER_LINEAR on 0/1 uint8), in
    ascending id order, later ids overwriting earlier ones."""
    out = np.zeros((h, w), dtype=ids.dtype)
    for value in np.unique(ids).tolist():
        if value == 0:
            continue
        resized = cv2.resize(
            (ids == value).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR
        )
        out = np.where(resized, value, out)
    return out


def _load(image_path: Path, mask_path: Path, max_side: int) -> list[Sample]:
    image = read_rgb(image_path)
    ids = encode_ids(read_color(mask_path))
    if ids.shape != image.shape[:2]:
        raise SampleError(mask_path, f"mask is {ids.shape} but the image {image.shape[:2]}")
    if max_side > 0:
        h, w = limited_size(*image.shape[:2], max_side)
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        ids = aligned_resize(ids, h, w)
    labels = [v for v in np.unique(ids).tolist() if v != 0]
    objects = [(v, (ids == v).astype(np.int8)) for v in labels]
    return make_samples("TETRIS", image_path.stem, image, image_path, mask_path, objects)


def list_tetris(root: Path, max_side: int = MAX_SIDE, n_samples: int = 0) -> list[SampleRef]:
    image_dir, mask_dir = LAYOUT.folders(root)
    images = matching_entries(image_dir, "*.*")
    refs = []
    for image_path in images[:n_samples] if n_samples else images:
        mask_path = (mask_dir / image_path.name).with_suffix(".png")
        load = partial(_load, image_path, mask_path, max_side)
        refs.append(SampleRef("TETRIS", image_path.stem, (image_path, mask_path), load))
    return refs


def with_options(spec: DatasetSpec, max_side: int = MAX_SIDE, n_samples: int = 0) -> DatasetSpec:
    """`tetris,max_side=N,n_samples=K`: another size cap, or RClicks' first-K split."""
    for key, value in (("max_side", max_side), ("n_samples", n_samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{spec.name}: {key}={value!r} must be a non-negative integer")
    if (max_side, n_samples) == (MAX_SIDE, 0):
        return spec
    suffix = (f"_max{max_side}" if max_side != MAX_SIDE else "") + (
        f"_first{n_samples}" if n_samples else ""
    )
    return replace(
        spec,
        name=spec.name + suffix,
        list_samples=partial(list_tetris, max_side=max_side, n_samples=n_samples),
        expected_images=n_samples or spec.expected_images,
        expected_instances=None if n_samples else spec.expected_instances,
        fingerprint=None,
        manifest={**spec.manifest, "max_side": max_side, "n_samples": n_samples},
    )


TETRIS = register(
    DatasetSpec(
        name="tetris",
        folder="TETRIS",
        list_samples=list_tetris,
        expected_instances=2531,
        expected_images=2000,
        citation="Antonov et al.: RClicks: Realistic Click Simulation for Benchmarking "
        "Interactive Segmentation, NeurIPS 2024",
        url="https://github.com/emb-ai/rclicks",
        notes="24-bit RGB instance ids (B*65536 + G*256 + R of the file); longest side capped "
        "at 2048 as RClicks resizes (max_side=N); n_samples=N evaluates the first N images.",
        layout=(LAYOUT.images, LAYOUT.masks),
        check_layout=partial(check_folder_layout, layout=LAYOUT),
        options=with_options,
        manifest={"max_side": MAX_SIDE, "n_samples": 0, "listing": "sorted(images/*.*)"},
    )
)
