"""Berkeley: 100 instances from 96 images, read with the GrabCut loader.

Official loader: `isegm/data/datasets/berkeley.py` (the GrabCut class with folders
`images`/`masks`, PROTOCOL.md section 8).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from bench.datasets import DatasetSpec, register
from bench.datasets._folders import FolderLayout, check_folder_layout, list_folder_pairs
from bench.datasets.grabcut import decode_grabcut_mask, grabcut_mask_warnings
from bench.sample import SampleRef

LAYOUT = FolderLayout(images="images", masks="masks")


def list_berkeley(root: Path) -> list[SampleRef]:
    return list_folder_pairs(root, LAYOUT, "Berkeley", decode_grabcut_mask, grabcut_mask_warnings)


BERKELEY = register(
    DatasetSpec(
        name="berkeley",
        folder="Berkeley",
        list_samples=list_berkeley,
        expected_instances=100,
        expected_images=100,
        citation="McGuinness and O'Connor: A comparative evaluation of interactive "
        "segmentation algorithms, Pattern Recognition 2010",
        url="https://github.com/SamsungLabs/fbrs_interactive_segmentation/releases/tag/v1.0",
        notes=(
            "100 instances from 96 distinct images: 189011a/b and 239007a/b are copies of one "
            "image each with different masks, so the image folder holds 100 files."
        ),
        layout=(LAYOUT.images, LAYOUT.masks),
        check_layout=partial(check_folder_layout, layout=LAYOUT),
    )
)
