"""ssTEM (Drosophila VNC electron microscopy): mitochondria, one object per connected component.

Official loader: SimpleClick `isegm/data/datasets/ssTEM.py` (PROTOCOL.md section 8).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import cv2
import numpy as np

from bench.datasets import DatasetSpec, register
from bench.datasets._folders import FolderLayout, check_folder_layout, list_folder_pairs
from bench.datasets._io import ObjectMasks
from bench.sample import SampleRef

LAYOUT = FolderLayout(
    images="raw", masks="mitochondria", image_pattern="*.tif", mask_pattern="*.png"
)

# The official call is `cv2.connectedComponentsWithStats(mask, connectivity)` with
# `connectivity = 4` passed *positionally*: the second positional parameter of the Python
# binding is the `labels` output array, so OpenCV runs with its default 8-connectivity.
# We reproduce what the official code computes, not what its variable name says
# (tests/test_datasets_formats.py checks the binding behaves so in the installed OpenCV).
OFFICIAL_CONNECTIVITY = 8


def decode_sstem_mask(bgr: np.ndarray) -> ObjectMasks:
    """Channel 0; each connected component of non-zero pixels is one object, label order."""
    channel0 = np.ascontiguousarray(bgr[:, :, 0])
    count, labels, _, _ = cv2.connectedComponentsWithStats(
        channel0, connectivity=OFFICIAL_CONNECTIVITY
    )
    return [(label, (labels == label).astype(np.int8)) for label in range(1, count)]


def list_sstem(root: Path) -> list[SampleRef]:
    return list_folder_pairs(root, LAYOUT, "ssTEM", decode_sstem_mask)


SSTEM = register(
    DatasetSpec(
        name="sstem",
        folder="ssTEM",
        list_samples=list_sstem,
        expected_instances=None,
        citation="Gerhard et al.: Segmented anisotropic ssTEM dataset of neural tissue, "
        "figshare 2013",
        url="https://github.com/unidesigner/groundtruth-drosophila-vnc",
        notes=(
            "Instance count not confirmed: the SimpleClick paper and README give no number we "
            "could verify, so verify only reports what it finds. Layout raw/*.tif + "
            "mitochondria/*.png. Objects are connected components with OpenCV's default "
            "8-connectivity: the official code means 4 but passes it into the `labels` slot."
        ),
        layout=(LAYOUT.images, LAYOUT.masks),
        check_layout=partial(check_folder_layout, layout=LAYOUT),
    )
)
