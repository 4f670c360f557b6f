"""COCO_MVal: 800 COCO val2017 objects, read with the DAVIS loader.

Official loader: `DavisDataset` on `COCO_MVAL_PATH` (`isegm/inference/utils.py:get_dataset`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from bench.datasets import DatasetSpec, register
from bench.datasets._folders import check_folder_layout, list_folder_pairs
from bench.datasets.davis import LAYOUT, decode_davis_mask
from bench.sample import SampleRef


def list_coco_mval(root: Path) -> list[SampleRef]:
    return list_folder_pairs(root, LAYOUT, "COCO_MVal", decode_davis_mask)


COCO_MVAL = register(
    DatasetSpec(
        name="coco_mval",
        folder="COCO_MVal",
        list_samples=list_coco_mval,
        expected_instances=800,
        expected_images=800,
        citation="Sofiiuk et al.: f-BRS, CVPR 2020 (800 objects of COCO val2017, Lin et al. "
        "ECCV 2014)",
        url="https://github.com/SamsungLabs/fbrs_interactive_segmentation/releases/tag/v1.0",
        notes="Same layout and decoding as DAVIS (img/, gt/).",
        layout=(LAYOUT.images, LAYOUT.masks),
        check_layout=partial(check_folder_layout, layout=LAYOUT),
    )
)
