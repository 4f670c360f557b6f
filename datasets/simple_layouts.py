"""Datasets with the simple folder layouts: GrabCut, Berkeley, DAVIS-345, COCO_MVal, demo.

Layouts, order and mask decoding follow RITM/SimpleClick `isegm/data/datasets/grabcut.py`,
`berkeley.py` and `davis.py` (PROTOCOL.md section 8): images listed from the image folder,
masks found by the image name up to its first dot.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from importlib import resources
from pathlib import Path

import numpy as np

from bench.datasets import DatasetSpec, register
from bench.datasets._io import (
    check_mask,
    list_image_folder,
    read_color,
    read_rgb,
    stem_to_first_dot,
)
from bench.sample import Sample, SampleError, SampleRef

DecodeMask = Callable[[np.ndarray], np.ndarray]


def decode_grabcut_mask(bgr: np.ndarray) -> np.ndarray:
    """Channel 0; 128 -> ignore, > 128 -> object; any other value keeps its number.

    The official code keeps other raw values as they are, so a raw 1 would be object; we
    reproduce that before collapsing to the tri-state encoding.
    """
    raw = bgr[:, :, 0].astype(np.int32)
    out = raw.copy()
    out[raw == 128] = -1
    out[raw > 128] = 1
    return np.where(out == 1, 1, np.where(out == -1, -1, 0)).astype(np.int8)


def decode_davis_mask(bgr: np.ndarray) -> np.ndarray:
    """Any non-zero colour is object (DAVIS `195.png` merges three colours, as official)."""
    return (bgr.max(axis=2) > 0).astype(np.int8)


def _load_one(
    dataset: str, sample_id: str, image_path: Path, mask_path: Path | None, decode: DecodeMask
) -> list[Sample]:
    if mask_path is None:
        raise SampleError(image_path, f"no mask named {sample_id}.* for this image")
    image = read_rgb(image_path)
    gt = check_mask(decode(read_color(mask_path)), image, image_path, mask_path)
    return [Sample(sample_id, image, gt, dataset, image_path, mask_path)]


def list_image_mask_folders(
    root: Path, images: str, masks: str, decode: DecodeMask, dataset: str
) -> list[SampleRef]:
    mask_dir = root / masks
    if not mask_dir.is_dir():
        raise FileNotFoundError(f"{mask_dir}: folder is missing")
    mask_by_stem = {p.name.split(".")[0]: p for p in mask_dir.iterdir() if "." in p.name}
    refs = []
    for image_path in list_image_folder(root / images):
        sid = stem_to_first_dot(image_path.name)
        mask_path = mask_by_stem.get(sid)
        files = (image_path,) if mask_path is None else (image_path, mask_path)
        load = partial(_load_one, dataset, sid, image_path, mask_path, decode)
        refs.append(SampleRef(dataset, sid, files, load))
    return refs


def _lister(images: str, masks: str, decode: DecodeMask, dataset: str):
    return partial(
        list_image_mask_folders, images=images, masks=masks, decode=decode, dataset=dataset
    )


GRABCUT = register(
    DatasetSpec(
        name="grabcut",
        folder="GrabCut",
        list_samples=_lister("data_GT", "boundary_GT", decode_grabcut_mask, "GrabCut"),
        expected_instances=50,
        expected_images=50,
        citation="Rother et al., GrabCut, SIGGRAPH 2004",
        url="https://github.com/SamsungLabs/fbrs_interactive_segmentation/releases/tag/v1.0",
        notes="Masks: 128 = ignore band; 8 of 50 masks have no ignore band.",
    )
)

BERKELEY = register(
    DatasetSpec(
        name="berkeley",
        folder="Berkeley",
        list_samples=_lister("images", "masks", decode_grabcut_mask, "Berkeley"),
        expected_instances=100,
        expected_images=96,
        citation="McGuinness and O'Connor, Pattern Recognition 2010",
        url="https://github.com/SamsungLabs/fbrs_interactive_segmentation/releases/tag/v1.0",
        notes="100 instances from 96 images: 189011a/b and 239007a/b are image copies.",
    )
)

DAVIS = register(
    DatasetSpec(
        name="davis",
        folder="DAVIS",
        list_samples=_lister("img", "gt", decode_davis_mask, "DAVIS"),
        expected_instances=345,
        expected_images=345,
        citation="Perazzi et al., DAVIS, CVPR 2016 (345-frame subset of Jang and Kim, CVPR 2019)",
        url="https://github.com/SamsungLabs/fbrs_interactive_segmentation/releases/tag/v1.0",
        notes=(
            "Every non-zero colour is object (195.png merges two instances and the VOC boundary "
            "colour). A variant copy with separately merged objects gives different numbers "
            "(InterFormer#3); check `bench datasets verify`."
        ),
    )
)

COCO_MVAL = register(
    DatasetSpec(
        name="coco_mval",
        folder="COCO_MVal",
        list_samples=_lister("img", "gt", decode_davis_mask, "COCO_MVal"),
        expected_instances=800,
        expected_images=800,
        citation="Sofiiuk et al., f-BRS, CVPR 2020 (COCO minival subset)",
        url="https://github.com/SamsungLabs/fbrs_interactive_segmentation/releases/tag/v1.0",
    )
)

DEMO = register(
    DatasetSpec(
        name="demo",
        folder="demo",
        list_samples=_lister("data_GT", "boundary_GT", decode_grabcut_mask, "demo"),
        expected_instances=4,
        expected_images=4,
        citation="Four GrabCut images (Rother et al., SIGGRAPH 2004), bundled for a first run",
        notes="Ships inside the package; needs no --data-root.",
        bundled_root=Path(str(resources.files("bench") / "demo")),
    )
)
