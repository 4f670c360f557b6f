"""Image-folder + mask-folder layouts (GrabCut, Berkeley, DAVIS, COCO_MVal, BraTS, ssTEM, OAIZIB).

All of these official loaders work the same way (RITM/SimpleClick `isegm/data/datasets/
grabcut.py`, `davis.py`, `brats.py`, `ssTEM.py`, `oai_zib.py`; PROTOCOL.md section 8):
samples are `sorted(images_dir.glob(image_pattern))`, masks are `{p.stem: p for p in
masks_dir.glob(mask_pattern)}` and an image finds its mask by its name up to the first dot.
Only the mask decoding differs, so each dataset module passes its own decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from bench.datasets._io import (
    ObjectMasks,
    hidden_entries,
    make_samples,
    matching_entries,
    read_color,
    read_rgb,
    stem_to_first_dot,
    unresolved_links,
)
from bench.sample import Sample, SampleError, SampleRef

MaskDecoder = Callable[[np.ndarray], ObjectMasks]
"""Colour-read (BGR) mask -> objects in official order."""

MaskWarnings = Callable[[np.ndarray], list[str]]
"""Colour-read (BGR) mask -> what the official rule accepts but a clean copy lacks."""


@dataclass(frozen=True)
class FolderLayout:
    images: str
    masks: str
    image_pattern: str = "*.*"
    mask_pattern: str = "*.*"

    def folders(self, root: Path) -> tuple[Path, Path]:
        return root / self.images, root / self.masks


def _masks_by_stem(mask_dir: Path, pattern: str) -> dict[str, Path]:
    """Official `{x.stem: x}`; with two masks of one stem the official pick depends on the
    directory order, so we take the first by name (verify reports the clash)."""
    masks: dict[str, Path] = {}
    for path in matching_entries(mask_dir, pattern):
        masks.setdefault(path.stem, path)
    return masks


def load_pair(
    dataset: str,
    sample_id: str,
    image_path: Path,
    mask_path: Path | None,
    decode: MaskDecoder,
    warn: MaskWarnings | None = None,
) -> list[Sample]:
    if mask_path is None:
        raise SampleError(image_path, f"mask is missing (no file named {sample_id}.* in masks)")
    image = read_rgb(image_path)
    bgr = read_color(mask_path)
    objects = decode(bgr)
    notes = [f"{mask_path}: {w}" for w in warn(bgr)] if warn is not None else []
    return make_samples(dataset, sample_id, image, image_path, mask_path, objects, notes)


def list_folder_pairs(
    root: Path,
    layout: FolderLayout,
    dataset: str,
    decode: MaskDecoder,
    warn: MaskWarnings | None = None,
) -> list[SampleRef]:
    image_dir, mask_dir = layout.folders(root)
    masks = _masks_by_stem(mask_dir, layout.mask_pattern)
    refs = []
    for image_path in matching_entries(image_dir, layout.image_pattern):
        sid = stem_to_first_dot(image_path.name)
        mask_path = masks.get(sid)
        files = (image_path,) if mask_path is None else (image_path, mask_path)
        load = partial(load_pair, dataset, sid, image_path, mask_path, decode, warn)
        refs.append(SampleRef(dataset, sid, files, load))
    return refs


def check_folder_layout(root: Path, layout: FolderLayout) -> list[SampleError]:
    """Things the official loader tolerates silently or crashes on, but a clean copy lacks."""
    image_dir, mask_dir = layout.folders(root)
    problems = [
        SampleError(p, "hidden file (the official loader lists it as an image and crashes)")
        for p in hidden_entries(image_dir)
    ]
    problems += [
        SampleError(p, "hidden file (not part of the dataset)") for p in hidden_entries(mask_dir)
    ]
    problems += unresolved_links(image_dir) + unresolved_links(mask_dir)
    if not (image_dir.is_dir() and mask_dir.is_dir()):
        return problems
    stems: dict[str, list[Path]] = {}
    for path in matching_entries(mask_dir, layout.mask_pattern):
        stems.setdefault(path.stem, []).append(path)
    for stem, paths in stems.items():
        if len(paths) > 1:
            others = ", ".join(p.name for p in paths[1:])
            problems.append(SampleError(paths[0], f"several masks named {stem}.* ({others})"))
    image_ids = {
        stem_to_first_dot(p.name) for p in matching_entries(image_dir, layout.image_pattern)
    }
    for stem, paths in stems.items():
        if stem not in image_ids:
            problems.append(SampleError(paths[0], "mask without an image (never evaluated)"))
    return problems
