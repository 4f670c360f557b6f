"""Pascal VOC 2012 val: every object of every val image, as SimpleClick evaluates it.

Official loader: `isegm/data/datasets/pascalvoc.py` (PROTOCOL.md section 8). The instance
PNG is read as colour and converted BGR -> grey with OpenCV, so objects are *grey ids*
(instance 1 -> 38, 2 -> 75, ...; the void colour -> 220), not palette indices.

Two registry entries:
* `pascalvoc`: SimpleClick's `val` split, `ImageSets/Segmentation/val.txt`, all grey ids of
  each image ascending, 220 = ignore.
* `pascalvoc_test`: RITM's `test` split, `ImageSets/Segmentation/test.pickle` (list of image
  ids, list of grey ids; one instance per entry). The pickle is not distributed with the
  dataset or the code, so this entry works only where a user has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from bench.datasets import DatasetSpec, register
from bench.datasets._io import (
    ObjectMasks,
    hidden_entries,
    make_samples,
    read_color,
    read_plain_pickle,
    read_rgb,
    read_text_ids,
)
from bench.sample import Sample, SampleError, SampleRef

IMAGES = "JPEGImages"
MASKS = "SegmentationObject"
VAL_LIST = "ImageSets/Segmentation/val.txt"
TEST_PICKLE = "ImageSets/Segmentation/test.pickle"
IGNORE_GREY = 220  # grey id of the VOC void colour (palette 255)


def voc_palette() -> np.ndarray:
    """256 x 3 uint8 RGB: the VOC colour map (bits of the index spread over R, G, B)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        code, rgb = index, [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << (7 - bit)
            code >>= 3
        palette[index] = rgb
    return palette


def grey_ids(bgr: np.ndarray) -> np.ndarray:
    """Official instance map: OpenCV BGR -> grey (fixed-point Rec.601), as int32."""
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.int32)


def _object_gt(grey: np.ndarray, object_id: int) -> np.ndarray:
    gt = (grey == object_id).astype(np.int8)
    gt[grey == IGNORE_GREY] = -1
    return gt


def decode_val(bgr: np.ndarray) -> ObjectMasks:
    """All grey ids except 0 and 220, ascending; each: own grey -> 1, 220 -> -1, rest -> 0."""
    grey = grey_ids(bgr)
    ids = [int(v) for v in np.unique(grey) if v not in (0, IGNORE_GREY)]
    return [(v, _object_gt(grey, v)) for v in ids]


def _load(
    root: Path, image_id: str, object_ids: Sequence[int] | None, dataset: str = "PascalVOC"
) -> list[Sample]:
    image_path = root / IMAGES / f"{image_id}.jpg"
    mask_path = root / MASKS / f"{image_id}.png"
    image = read_rgb(image_path)
    bgr = read_color(mask_path)
    notes = [f"{mask_path}: {w}" for w in palette_warnings(bgr)]
    if object_ids is None:
        objects = decode_val(bgr)
    else:
        grey = grey_ids(bgr)
        objects = [(int(v), _object_gt(grey, int(v))) for v in object_ids]
    return make_samples(dataset, image_id, image, image_path, mask_path, objects, notes)


def _ref(root: Path, image_id: str, object_ids: Sequence[int] | None) -> SampleRef:
    files = (root / IMAGES / f"{image_id}.jpg", root / MASKS / f"{image_id}.png")
    return SampleRef("PascalVOC", image_id, files, partial(_load, root, image_id, object_ids))


def list_val(root: Path) -> list[SampleRef]:
    return [_ref(root, image_id, None) for image_id in read_text_ids(root / VAL_LIST)]


def list_test(root: Path) -> list[SampleRef]:
    """RITM's pickle split; entries of one image are grouped into one ref, in first-seen order."""
    path = root / TEST_PICKLE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: RITM's test split pickle is missing (it is not distributed with VOC or "
            "the code); use `pascalvoc` (SimpleClick's val split) instead"
        )
    content = read_plain_pickle(path)
    try:
        names, ids = content
        pairs = list(zip(names, ids, strict=True))
    except (TypeError, ValueError):
        raise FileNotFoundError(f"{path}: expected (image ids, grey ids) lists") from None
    grouped: dict[str, list[int]] = {}
    for name, object_id in pairs:
        grouped.setdefault(str(name), []).append(int(object_id))
    return [_ref(root, name, ids) for name, ids in grouped.items()]


_PALETTE_CODES = frozenset(
    (voc_palette()[:, ::-1].astype(np.int32) @ np.array([65536, 256, 1])).tolist()
)


def palette_warnings(bgr: np.ndarray) -> list[str]:
    """Mask colours outside the VOC palette mean a re-encoded (e.g. JPEG) or resized mask.

    The official grey conversion still reads such a mask (each foreign grey value becomes an
    object of its own), so a run evaluates it and records this note; verify warns the same.
    """
    wide = bgr.astype(np.int32)
    codes = wide[:, :, 0] * 65536 + wide[:, :, 1] * 256 + wide[:, :, 2]
    unique, counts = np.unique(codes, return_counts=True)
    foreign = ~np.isin(unique, np.fromiter(_PALETTE_CODES, dtype=np.int64))
    if not foreign.any():
        return []
    return [
        f"{int(foreign.sum())} mask colours are not VOC palette colours "
        f"({int(counts[foreign].sum())} pixels; read by the official grey conversion)"
    ]


def check_voc_layout(root: Path) -> list[SampleError]:
    return [
        SampleError(p, "hidden file")
        for folder in (root / IMAGES, root / MASKS)
        for p in hidden_entries(folder)
    ]


_CITATION = "Everingham et al.: The PASCAL Visual Object Classes (VOC) Challenge, IJCV 2010"
_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"

PASCALVOC = register(
    DatasetSpec(
        name="pascalvoc",
        folder="PascalVOC",
        list_samples=list_val,
        expected_instances=3417,
        expected_images=1449,
        citation=_CITATION,
        url=_URL,
        notes=(
            "SimpleClick `val` split: all grey ids of each val.txt image, ids <image>#<grey>. "
            "3417 is the paper's count (1449 images); it is RITM's test-pickle count, and we "
            "could not confirm that the val split's all-grey-ids rule gives the same number: "
            "verify reports the count found. Instances 1/16, 3/18, 6/21, 9/24 share a grey id "
            "and merge (official behaviour). Folder = VOCdevkit/VOC2012."
        ),
        layout=(IMAGES, MASKS, VAL_LIST),
        check_layout=check_voc_layout,
    )
)

PASCALVOC_TEST = register(
    DatasetSpec(
        name="pascalvoc_test",
        folder="PascalVOC",
        list_samples=list_test,
        expected_instances=3417,
        expected_images=None,
        citation=_CITATION,
        url=_URL,
        notes=(
            "RITM `test` split from ImageSets/Segmentation/test.pickle (not distributed; "
            "needed only to reproduce RITM's own PascalVOC numbers)."
        ),
        layout=(IMAGES, MASKS, TEST_PICKLE),
        present_when=TEST_PICKLE,
        check_layout=check_voc_layout,
    )
)
