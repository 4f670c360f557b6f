"""Dataset registry: a dict from CLI name to a `DatasetSpec` (detectron2 DatasetCatalog style).

Each dataset lives in its own module with one listing function; this file only collects
them. `--data-root DIR` (or `BENCH_DATA_ROOT`) holds one folder per dataset under its
official name (`DIR/GrabCut`, `DIR/DAVIS`, ...).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.sample import SampleRef


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # CLI name, lowercase
    folder: str  # official folder name under the data root; also `Sample.dataset`
    list_samples: Callable[[Path], list[SampleRef]]  # root folder -> entries in official order
    expected_instances: int | None
    citation: str = ""
    url: str = ""
    notes: str = ""
    expected_images: int | None = None
    bundled_root: Path | None = None  # shipped inside the package (the demo set)


DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    DATASETS[spec.name] = spec
    return spec


def get_dataset(name: str) -> DatasetSpec:
    key = name.strip().lower()
    if key not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise KeyError(f"unknown dataset {name!r}; known datasets: {known}")
    return DATASETS[key]


def default_data_root() -> Path | None:
    env = os.environ.get("BENCH_DATA_ROOT")
    return Path(env) if env else None


def dataset_root(spec: DatasetSpec, data_root: Path | str | None) -> Path:
    """Folder of one dataset: bundled, or `<data_root>/<official folder>`."""
    if spec.bundled_root is not None:
        return spec.bundled_root
    root = Path(data_root) if data_root is not None else default_data_root()
    if root is None:
        raise FileNotFoundError(
            f"dataset {spec.name!r} needs --data-root (or BENCH_DATA_ROOT) pointing at a folder "
            f"that contains {spec.folder}/" + (f"; download: {spec.url}" if spec.url else "")
        )
    path = root / spec.folder
    if not path.is_dir():
        raise FileNotFoundError(
            f"dataset {spec.name!r}: folder {path} does not exist"
            + (f"; download: {spec.url}" if spec.url else "")
        )
    return path


def list_samples(name: str, data_root: Path | str | None = None) -> list[SampleRef]:
    spec = get_dataset(name)
    return spec.list_samples(dataset_root(spec, data_root))


# Each dataset module registers itself on import.
from bench.datasets import simple_layouts  # noqa: E402,F401
