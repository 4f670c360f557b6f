"""Four GrabCut images shipped inside the package, for a first run without any download."""

from __future__ import annotations

from functools import partial
from importlib import resources
from pathlib import Path

from bench.datasets import DatasetSpec, register
from bench.datasets._folders import check_channel0_values, list_folder_pairs
from bench.datasets.grabcut import LAYOUT, MASK_VALUES, decode_grabcut_mask
from bench.sample import SampleRef


def list_demo(root: Path) -> list[SampleRef]:
    return list_folder_pairs(root, LAYOUT, "demo", decode_grabcut_mask)


DEMO = register(
    DatasetSpec(
        name="demo",
        folder="demo",
        list_samples=list_demo,
        expected_instances=4,
        expected_images=4,
        citation="Four GrabCut images (Rother et al., SIGGRAPH 2004), bundled for a first run",
        notes="Ships inside the package; needs no --data-root.",
        bundled_root=Path(str(resources.files("bench") / "demo")),
        layout=(LAYOUT.images, LAYOUT.masks),
        check_entry=partial(check_channel0_values, allowed=MASK_VALUES),
        fingerprint="753976e5986bebfe",
    )
)
