"""Four GrabCut images shipped inside the package, for a first run without any download."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from bench.datasets import DatasetSpec, register
from bench.datasets._folders import list_folder_pairs
from bench.datasets.grabcut import LAYOUT, decode_grabcut_mask, grabcut_mask_warnings
from bench.sample import SampleRef


def list_demo(root: Path) -> list[SampleRef]:
    return list_folder_pairs(root, LAYOUT, "demo", decode_grabcut_mask, grabcut_mask_warnings)


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
        fingerprint="753976e5986bebfe",
    )
)
