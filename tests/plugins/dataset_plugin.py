"""A third-party dataset plugin: the first `count` GrabCut images under a new name.

Loaded by tests as `--datasets tests/plugins/dataset_plugin.py:first_grabcut,count=3` and
through an entry point of a temporary distribution (group `iseg_bench.datasets`).
"""

from __future__ import annotations

from bench.datasets import DatasetSpec
from bench.datasets.grabcut import list_grabcut


def first_grabcut(count: int = 3) -> DatasetSpec:
    return DatasetSpec(
        name=f"grabcut-first{count}",
        folder="GrabCut",
        list_samples=lambda root: list_grabcut(root)[:count],
        expected_instances=count,
        expected_images=count,
        citation="a test plugin",
    )
