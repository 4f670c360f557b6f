"""Dataset registry: a dict from CLI name to a `DatasetSpec` (detectron2 DatasetCatalog style).

Each dataset lives in its own module with one listing function and one registry entry;
this file only collects them. `--data-root DIR` (or `BENCH_DATA_ROOT`) holds one folder per
dataset under its official name (`DIR/GrabCut`, `DIR/DAVIS`, ...). Listing is cheap (no
pixels are decoded); `SampleRef.load()` decodes one image and all its instances, so a run
streams and a bad file only fails its own entry (`SampleError`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.sample import SampleError, SampleRef


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # CLI name, lowercase
    folder: str  # official folder name under the data root; also `Sample.dataset`
    list_samples: Callable[[Path], list[SampleRef]]  # root folder -> entries in official order
    expected_instances: int | None  # the paper's count; None where no official count is known
    citation: str = ""
    url: str = ""
    notes: str = ""
    expected_images: int | None = None
    bundled_root: Path | None = None  # shipped inside the package (the demo set)
    layout: tuple[str, ...] = ()  # paths under the root that must exist (for `verify`)
    # Extra checks for `bench datasets verify`, reported as warnings: flaws the official
    # loader tolerates but a clean copy does not have (hidden files, orphan masks). Flaws a
    # load itself meets go in `Sample.warnings`, so that `bench run` records them too.
    check_layout: Callable[[Path], list[SampleError]] | None = None
    check_entry: Callable[[SampleRef], list[SampleError]] | None = None
    # Path under the root whose existence means "this dataset is here" (default: the root);
    # for a second split that shares its folder with another entry (pascalvoc_test).
    present_when: str | None = None
    # `verify`'s hash of every instance's id, size and pixel counts on the reference copy.
    fingerprint: str | None = None


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


def is_present(spec: DatasetSpec, data_root: Path | str | None) -> bool:
    try:
        root = dataset_root(spec, data_root)
    except FileNotFoundError:
        return False
    return spec.present_when is None or (root / spec.present_when).exists()


def list_samples(name: str, data_root: Path | str | None = None) -> list[SampleRef]:
    spec = get_dataset(name)
    return spec.list_samples(dataset_root(spec, data_root))


# Each dataset module registers itself on import.
from bench.datasets import (  # noqa: E402,F401
    berkeley,
    brats,
    coco_mval,
    cocolvis,
    davis,
    demo,
    grabcut,
    oaizib,
    pascalvoc,
    sbd,
    sstem,
)

# Listed in the order of the paper's tables, then the extras.
_ORDER = (
    "grabcut",
    "berkeley",
    "davis",
    "pascalvoc",
    "sbd",
    "coco_mval",
    "sstem",
    "brats",
    "oaizib",
)
for _name in (*_ORDER, "pascalvoc_test", "cocolvis", "demo"):
    DATASETS[_name] = DATASETS.pop(_name)
