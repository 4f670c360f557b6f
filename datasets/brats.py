"""BraTS: 369 MRI slices, one tumour object each (SimpleClick's 2D slices of BraTS 2020).

Official loader: SimpleClick `isegm/data/datasets/brats.py` (PROTOCOL.md section 8).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from bench.datasets import DatasetSpec, register
from bench.datasets._folders import FolderLayout, check_folder_layout, list_folder_pairs
from bench.datasets._io import ObjectMasks
from bench.sample import SampleRef

LAYOUT = FolderLayout(
    images="image", masks="annotation", image_pattern="*.png", mask_pattern="*.png"
)


def decode_brats_mask(bgr: np.ndarray) -> ObjectMasks:
    """Channel 0 > 0 is the object (all tumour sub-labels merged); no ignore label."""
    return [(None, (bgr[:, :, 0] > 0).astype(np.int8))]


def list_brats(root: Path) -> list[SampleRef]:
    return list_folder_pairs(root, LAYOUT, "BraTS", decode_brats_mask)


BRATS = register(
    DatasetSpec(
        name="brats",
        folder="BraTS",
        list_samples=list_brats,
        expected_instances=369,
        expected_images=369,
        citation="Menze et al.: The multimodal brain tumor image segmentation benchmark "
        "(BRATS), IEEE TMI 2015; Bakas et al. 2017/2018",
        url="https://drive.google.com/drive/folders/1B6y1nNBnWU09EhxvjaTdp1XGjc1T6wUk",
        notes="369 slices, one per BraTS 2020 case (SimpleClick README: 369 cases).",
        layout=(LAYOUT.images, LAYOUT.masks),
        check_layout=partial(check_folder_layout, layout=LAYOUT),
    )
)
