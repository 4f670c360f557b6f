"""The images the demo shows, listed once at start-up and addressed by position only.

A request names an entry by its index in this listing and an instance by its index within
the entry, never by a file name or a sample id, so nothing a request sends reaches the
filesystem (no path traversal). Entries decode lazily (COCO-sized listings stay cheap) and
the last few decoded ones are cached, because a person goes back and forth between images.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from bench.sample import IGNORE, Sample

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp")
FOLDER_DATASET = "images"
"""`dataset` of `--images` files in the page and the recording (no ground truth)."""


@dataclass(frozen=True, eq=False)
class Entry:
    dataset: str  # registry name (`demo`, `davis`), or FOLDER_DATASET
    id: str
    load: Callable[[], Sequence[Sample]]
    has_gt: bool


def dataset_entries(names: Sequence[str], data_root: Path | None) -> list[Entry]:
    """Entries of registered datasets in official order; raises KeyError/FileNotFoundError."""
    from bench.datasets import dataset_root, get_dataset

    entries = []
    for name in names:
        spec = get_dataset(name)
        for ref in spec.list_samples(dataset_root(spec, data_root)):
            entries.append(Entry(spec.name, ref.id, ref.load, has_gt=True))
    return entries


def _load_image_file(path: Path) -> list[Sample]:
    from bench.datasets._io import read_rgb

    image = read_rgb(path)
    # No ground truth: every pixel is "ignore", so no IoU is ever computed from it.
    gt = np.full(image.shape[:2], IGNORE, dtype=np.int8)
    return [Sample(path.name, image, gt, FOLDER_DATASET, image_path=path)]


def folder_entries(folder: Path) -> list[Entry]:
    """Image files directly inside `folder`, sorted by name; one instance each, no ground truth."""
    if not folder.is_dir():
        raise FileNotFoundError(f"--images {folder}: not a folder")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise FileNotFoundError(f"--images {folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return [Entry(FOLDER_DATASET, p.name, partial(_load_image_file, p), False) for p in files]


class Catalog:
    """The listing plus a small cache of decoded entries (thread-safe)."""

    def __init__(self, entries: Sequence[Entry], cache_size: int = 4):
        if not entries:
            raise ValueError("nothing to show: the listing is empty")
        self.entries = tuple(entries)
        self._cache: OrderedDict[int, list[Sample]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.entries)

    def samples(self, index: int) -> list[Sample]:
        """Decoded instances of entry `index`; IndexError outside the listing, SampleError on
        a bad file."""
        if not 0 <= index < len(self.entries):
            raise IndexError(f"entry {index} is outside the listing (0..{len(self.entries) - 1})")
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
        samples = list(self.entries[index].load())
        with self._lock:
            self._cache[index] = samples
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return samples
