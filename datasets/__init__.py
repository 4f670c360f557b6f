"""Dataset registry: a dict from CLI name to a `DatasetSpec` (detectron2 DatasetCatalog style).

Each dataset lives in its own module with one listing function and one registry entry;
this file only collects them. A name is registered once: a second registration, or an
entry point (group `iseg_bench.datasets`) under a taken name, is refused naming both sources.
`--datasets` also takes a user's own data with no code (`folder:PATH`, `coco:JSON`) and
plugins (`module:function`, `file.py:function`); `resolve_dataset` reads every form.

`--data-root DIR` (or `BENCH_DATA_ROOT`) holds one folder per
dataset under its official name (`DIR/GrabCut`, `DIR/DAVIS`, ...). Listing is cheap (no
pixels are decoded); `SampleRef.load()` decodes one image and all its instances, so a run
streams and a bad file only fails its own entry (`SampleError`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
    # A fixed folder: shipped inside the package (the demo set) or named by the spec
    # (`folder:PATH`, `coco:JSON`); such a dataset needs no --data-root.
    bundled_root: Path | None = None
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
    # Who registered it ("bench.datasets.grabcut", "entry point x = pkg:fn", "folder:PATH").
    origin: str = ""
    # What a run records about how it read the data (rule, ignore value, listing order, the
    # `--datasets` text), beside the counts, in manifest.json.
    manifest: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # `--datasets NAME,k=v`: (spec, **options) -> the variant spec (its own name), e.g.
    # `davis585,mode=sp`; None: the dataset takes no options.
    options: Callable[..., DatasetSpec] | None = None


class DatasetNameError(ValueError):
    """A dataset name registered twice; the message names both sources."""


DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec, origin: str | None = None) -> DatasetSpec:
    """Add a dataset under its name; a taken name is refused (never overwritten)."""
    origin = origin or spec.origin or sys._getframe(1).f_globals.get("__name__", "?")
    taken = DATASETS.get(spec.name)
    if taken is not None:
        raise DatasetNameError(
            f"dataset {spec.name!r} is already registered by {taken.origin}; "
            f"{origin} registers it again"
        )
    spec = replace(spec, origin=origin)
    DATASETS[spec.name] = spec
    return spec


def get_dataset(name: str) -> DatasetSpec:
    """A registered name, an entry-point plugin, or a spec (`folder:`, `coco:`, plugin)."""
    from bench.datasets.resolve import resolve_dataset

    return resolve_dataset(name)


def split_dataset_specs(text: str) -> tuple[str, ...]:
    """`--datasets` value -> specs: `grabcut,folder:D,ignore=128,davis` -> 3 specs.

    Items are comma-separated; an item of the form `key=value` belongs to the spec before it.
    """
    from bench.datasets.resolve import split_specs

    return split_specs(text)


def default_data_root() -> Path | None:
    env = os.environ.get("BENCH_DATA_ROOT")
    return Path(env) if env else None


def dataset_root(spec: DatasetSpec, data_root: Path | str | None) -> Path:
    """Folder of one dataset: bundled or given by its spec, or `<data_root>/<official folder>`."""
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
    davis585,
    demo,
    grabcut,
    hqseg44k,
    oaizib,
    pascalvoc,
    sbd,
    sstem,
    tetris,
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
    "hqseg44k",
    "davis585",
    "tetris",
)
_HQSEG_SUBSETS = ("dis5k-vd", "thinobject5k-te", "coift", "hrsod")
for _name in (*_ORDER, *_HQSEG_SUBSETS, "pascalvoc_test", "cocolvis", "demo"):
    DATASETS[_name] = DATASETS.pop(_name)
