"""HQSeg-44K validation: 1,537 high-quality masks in four subsets (SegNext, HQ-SAM).

Official loader: SegNext `segnext/isegm/data/datasets/hqseg44k.py` `HQSeg44kDataset(path,
split="val")` (golden/metrics/README.md section 5a). Subsets in the loader's order, each
`sorted(glob("*.jpg"))` of its image folder (only `.jpg`: other files and masks without an
image are not listed), the mask `<stem>.png` in the mask folder, one object per image.

GT rule (`rule=`):
- `segnext` (default, as SegNext evaluates): any channel > 0 is object, so anti-aliased edge
  values 1..254 are object; no ignore label;
- `hqsam`: HQ-SAM's `train/utils/dataloader.py` + metrics, channel R (skimage's channel 0)
  > 128. HQ-SAM also orders the subsets differently (DIS5K-VD, COIFT, HRSOD, ThinObject5k-TE)
  and lists unsorted; we keep SegNext's sorted order under either rule.
The manifest records the rule. Each subset is also a dataset of its own (`dis5k-vd`,
`thinobject5k-te`, `coift`, `hrsod`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from bench.datasets import DatasetSpec, register
from bench.datasets._io import make_samples, matching_entries, read_color, read_rgb
from bench.sample import Sample, SampleError, SampleRef

FOLDER = "HQSeg44K"
RULES = ("segnext", "hqsam")
CITATION = (
    "Ke et al.: Segment Anything in High Quality (HQ-SAM), NeurIPS 2023; evaluated for "
    "interactive segmentation by Liu et al.: SegNext, CVPR 2024"
)


@dataclass(frozen=True)
class Subset:
    name: str  # SegNext's subset name
    images: str
    masks: str
    count: int  # official validation images


SUBSETS = (
    Subset("DIS5K-VD", "DIS5K/DIS-VD/im", "DIS5K/DIS-VD/gt", 470),
    Subset(
        "ThinObject5k-TE",
        "thin_object_detection/ThinObject5K/images_test",
        "thin_object_detection/ThinObject5K/masks_test",
        500,
    ),
    Subset("COIFT", "thin_object_detection/COIFT/images", "thin_object_detection/COIFT/masks", 280),
    Subset(
        "HRSOD",
        "thin_object_detection/HRSOD/images",
        "thin_object_detection/HRSOD/masks_max255",
        287,
    ),
)


def decode_hqseg_mask(bgr: np.ndarray, rule: str) -> np.ndarray:
    """`segnext`: max over channels > 0; `hqsam`: R channel (BGR index 2) > 128."""
    if rule == "hqsam":
        return (bgr[:, :, 2] > 128).astype(np.int8)
    return ((bgr[:, :, 0] | bgr[:, :, 1] | bgr[:, :, 2]) > 0).astype(np.int8)


def _load(subset: Subset, root: Path, image_path: Path, rule: str) -> list[Sample]:
    stem = image_path.stem
    mask_path = root / subset.masks / f"{stem}.png"
    if not mask_path.is_file():
        raise SampleError(image_path, f"mask is missing ({subset.masks}/{stem}.png)")
    image = read_rgb(image_path)
    gt = decode_hqseg_mask(read_color(mask_path), rule)
    sid = f"{subset.name}/{stem}"
    return make_samples("HQSeg44K", sid, image, image_path, mask_path, [(None, gt)])


def list_hqseg44k(
    root: Path, subsets: tuple[Subset, ...] = SUBSETS, rule: str = "segnext"
) -> list[SampleRef]:
    refs = []
    for subset in subsets:
        for image_path in matching_entries(root / subset.images, "*.jpg"):
            load = partial(_load, subset, root, image_path, rule)
            files = (image_path, root / subset.masks / f"{image_path.stem}.png")
            refs.append(SampleRef("HQSeg44K", f"{subset.name}/{image_path.stem}", files, load))
    return refs


def check_hqseg_layout(root: Path, subsets: tuple[Subset, ...] = SUBSETS) -> list[SampleError]:
    """For `verify`: files the official `*.jpg` listing skips, and masks without an image."""
    problems = []
    for subset in subsets:
        image_dir, mask_dir = root / subset.images, root / subset.masks
        if not (image_dir.is_dir() and mask_dir.is_dir()):
            continue
        stems = set()
        for path in sorted(image_dir.iterdir()):
            if path.is_file() and path.suffix == ".jpg" and not path.name.startswith("."):
                stems.add(path.stem)
            elif path.is_file():
                problems.append(SampleError(path, "not listed (the official loader reads *.jpg)"))
        problems += [
            SampleError(path, "mask without an image (never evaluated)")
            for path in sorted(mask_dir.iterdir())
            if path.is_file() and path.suffix == ".png" and path.stem not in stems
        ]
    return problems


def with_rule(spec: DatasetSpec, rule: str = "segnext") -> DatasetSpec:
    """`hqseg44k,rule=hqsam`: the same images under HQ-SAM's > 128 rule."""
    if rule not in RULES:
        raise ValueError(f"{spec.name}: rule={rule!r}; use one of {', '.join(RULES)}")
    if rule == "segnext":
        return spec
    subsets = spec.manifest["subsets"]
    chosen = tuple(s for s in SUBSETS if s.name in subsets)
    return replace(
        spec,
        name=f"{spec.name}_hqsam",
        list_samples=partial(list_hqseg44k, subsets=chosen, rule=rule),
        manifest={**spec.manifest, "rule": "hqsam: R channel > 128 (HQ-SAM)"},
        fingerprint=None,
    )


def _register(name: str, subsets: tuple[Subset, ...]) -> DatasetSpec:
    return register(
        DatasetSpec(
            name=name,
            folder=FOLDER,
            list_samples=partial(list_hqseg44k, subsets=subsets),
            expected_instances=sum(s.count for s in subsets),
            expected_images=sum(s.count for s in subsets),
            citation=CITATION,
            url="https://huggingface.co/sam-hq-team/sam-hq-training/tree/main/data",
            notes="GT rule: SegNext's any channel > 0 (default) or rule=hqsam (R > 128). "
            "Only .jpg images are listed.",
            layout=tuple(p for s in subsets for p in (s.images, s.masks)),
            present_when=subsets[0].images,
            check_layout=partial(check_hqseg_layout, subsets=subsets),
            options=with_rule,
            manifest={
                "rule": "segnext: any channel > 0 (SegNext)",
                "subsets": [s.name for s in subsets],
                "listing": "subsets in SegNext's order, sorted(*.jpg) within each",
            },
        ),
        origin=__name__,
    )


HQSEG44K = _register("hqseg44k", SUBSETS)
for _subset in SUBSETS:
    _register(_subset.name.lower(), (_subset,))
