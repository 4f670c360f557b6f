"""OAI-ZIB: 150 knee MRI slices, two cartilage objects each (femoral and tibial).

Official loader: SimpleClick `isegm/data/datasets/oai_zib.py`, split `test`
(PROTOCOL.md section 8).
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
    images="test/image", masks="test/annotations", image_pattern="*.png", mask_pattern="*.png"
)


def decode_oaizib_mask(bgr: np.ndarray) -> ObjectMasks:
    """Channel 0; every distinct non-zero value is one object, ascending; no ignore label."""
    labels = bgr[:, :, 0]
    return [(int(v), (labels == v).astype(np.int8)) for v in np.unique(labels) if v != 0]


def list_oaizib(root: Path) -> list[SampleRef]:
    return list_folder_pairs(root, LAYOUT, "OAIZIB", decode_oaizib_mask)


OAIZIB = register(
    DatasetSpec(
        name="oaizib",
        folder="OAIZIB",
        list_samples=list_oaizib,
        expected_instances=300,
        expected_images=150,
        citation="Ambellan et al.: Automated segmentation of knee bone and cartilage combining "
        "statistical shape knowledge and CNNs: data from the Osteoarthritis Initiative, "
        "Medical Image Analysis 2019",
        url="https://drive.google.com/drive/folders/1B6y1nNBnWU09EhxvjaTdp1XGjc1T6wUk",
        notes="150 test slices / 300 instances (femoral + tibial cartilage); ids <slice>#<label>.",
        layout=(LAYOUT.images, LAYOUT.masks),
        check_layout=partial(check_folder_layout, layout=LAYOUT),
    )
)
