"""GrabCut: 50 images, one object each, with a grey "unknown" band as ignore.

Official loader: RITM/SimpleClick `isegm/data/datasets/grabcut.py` (PROTOCOL.md section 8).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from bench.datasets import DatasetSpec, register
from bench.datasets._folders import FolderLayout, check_folder_layout, list_folder_pairs
from bench.datasets._io import ObjectMasks
from bench.sample import SampleRef

LAYOUT = FolderLayout(images="data_GT", masks="boundary_GT")
MASK_VALUES = frozenset({0, 128, 255})


def decode_grabcut_mask(bgr: np.ndarray) -> ObjectMasks:
    """Channel 0 (blue); 128 -> ignore, > 128 -> object; any other value keeps its number.

    The official code keeps other raw values as they are and the object is "== 1", so a raw
    1 is object and 2..127 are background; we reproduce that before collapsing to {1, 0, -1}.
    """
    raw = bgr[:, :, 0]
    gt = np.zeros(raw.shape, dtype=np.int8)
    gt[(raw > 128) | (raw == 1)] = 1
    gt[raw == 128] = -1
    return [(None, gt)]


def grabcut_mask_warnings(bgr: np.ndarray) -> list[str]:
    """Channel-0 values other than 0/128/255, as anti-aliased or re-saved masks have.

    The official rule above accepts them, so a run evaluates such a mask; `bench run` records
    this note and `bench datasets verify` lists it as a warning, with the pixels the rule maps.
    """
    raw = bgr[:, :, 0]
    odd = ~np.isin(raw, tuple(MASK_VALUES))
    count = int(np.count_nonzero(odd))
    if not count:
        return []
    values = np.unique(raw[odd]).tolist()
    shown = ", ".join(map(str, values[:8])) + (", ..." if len(values) > 8 else "")
    to_object = int(np.count_nonzero(odd & ((raw > 128) | (raw == 1))))
    return [
        f"{count} mask pixel(s) with values other than 0/128/255 ({shown}); accepted by the "
        f"official threshold, which maps {to_object} to object (> 128, or 1) and "
        f"{count - to_object} to background"
    ]


def list_grabcut(root: Path) -> list[SampleRef]:
    return list_folder_pairs(root, LAYOUT, "GrabCut", decode_grabcut_mask, grabcut_mask_warnings)


GRABCUT = register(
    DatasetSpec(
        name="grabcut",
        folder="GrabCut",
        list_samples=list_grabcut,
        expected_instances=50,
        expected_images=50,
        citation="Rother, Kolmogorov, Blake: GrabCut, ACM SIGGRAPH 2004",
        url="https://github.com/SamsungLabs/fbrs_interactive_segmentation/releases/tag/v1.0",
        notes="Masks: 128 = ignore band; 8 of 50 masks have no ignore band (values 0/255).",
        layout=(LAYOUT.images, LAYOUT.masks),
        check_layout=partial(check_folder_layout, layout=LAYOUT),
        fingerprint="e6e07226211195b8",  # the fBRS v1.0 release copy
    )
)
