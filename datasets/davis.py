"""DAVIS-345: 345 frames, one object each, every non-zero mask colour is object.

Official loader: `isegm/data/datasets/davis.py` (PROTOCOL.md section 8).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from bench.datasets import DatasetSpec, register
from bench.datasets._folders import FolderLayout, check_folder_layout, list_folder_pairs
from bench.datasets._io import ObjectMasks
from bench.sample import SampleRef

LAYOUT = FolderLayout(images="img", masks="gt")


def decode_davis_mask(bgr: np.ndarray) -> ObjectMasks:
    """Maximum over the three channels > 0 is object; there is no ignore label.

    max > 0 is "any channel non-zero", computed as a bitwise or (numpy's max over a last
    axis of length 3 is ten times slower).
    """
    nonzero = (bgr[:, :, 0] | bgr[:, :, 1] | bgr[:, :, 2]) > 0
    return [(None, nonzero.astype(np.int8))]


def list_davis(root: Path) -> list[SampleRef]:
    return list_folder_pairs(root, LAYOUT, "DAVIS", decode_davis_mask)


DAVIS = register(
    DatasetSpec(
        name="davis",
        folder="DAVIS",
        list_samples=list_davis,
        expected_instances=345,
        expected_images=345,
        citation="Perazzi et al.: DAVIS, CVPR 2016; 345-frame subset from Jang and Kim: "
        "BRS, CVPR 2019",
        url="https://github.com/SamsungLabs/fbrs_interactive_segmentation/releases/tag/v1.0",
        notes=(
            "Every non-zero colour is object: 195.png merges two instance colours and the VOC "
            "boundary colour into one object, as the official loader does. Use the fBRS/RITM "
            "release: FocusCut's DAVIS copy has re-processed masks (objects merged, files "
            "renamed) and gives other numbers (InterFormer#3: 008.jpg crashed, NoC@90 5.54 vs "
            "6.19). verify compares the annotations with a fingerprint of the release copy."
        ),
        layout=(LAYOUT.images, LAYOUT.masks),
        check_layout=partial(check_folder_layout, layout=LAYOUT),
        fingerprint="963fb21b5d28f191",  # the fBRS v1.0 release copy
    )
)
