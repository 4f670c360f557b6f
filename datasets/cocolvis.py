"""COCO-style instance annotations (COCO, LVIS, or your own) through pycocotools.

Layout: `<data root>/COCO_LVIS/annotations.json` (COCO "instances" format; LVIS v1 files
work too) and `<data root>/COCO_LVIS/images/<file_name>` (LVIS records without `file_name`
use the last part of `coco_url`).

Not an evaluation set of the official code (RITM's COCO+LVIS loader is for training and
reads its own pickles, PROTOCOL.md section 8); this is for users who evaluate on COCO-style
annotations. Our rules, fixed here so that results are comparable:
* images in ascending image id; images without any non-crowd annotation are not listed;
* objects: the image's non-crowd annotations in ascending annotation id, decoded with
  `COCO.annToMask` (polygons and RLE); ids `<image id>#<annotation id>`;
* crowd regions (`iscrowd: 1`) are ignore (-1) in every object's gt, as COCOeval ignores
  them, except where they overlap the object itself;
* an annotation whose mask is empty after rasterisation is skipped, with a warning that
  `bench run` records and `bench datasets verify` lists.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from functools import partial
from pathlib import Path

import numpy as np

from bench.datasets import DatasetSpec, register
from bench.datasets._io import hidden_entries, make_samples, read_rgb
from bench.sample import Sample, SampleError, SampleRef

ANNOTATIONS = "annotations.json"
IMAGES = "images"
DATASET = "COCO_LVIS"


def load_coco(path: Path):
    """pycocotools `COCO` index of the annotation file, without its progress prints."""
    from pycocotools.coco import COCO

    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file is missing")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise FileNotFoundError(f"{path}: not a COCO-style annotation file ({exc})") from None


def image_file_name(record: dict) -> str:
    if record.get("file_name"):
        return str(record["file_name"])
    if record.get("coco_url"):
        return str(record["coco_url"]).rstrip("/").rsplit("/", 1)[-1]
    return f"{int(record['id']):012d}.jpg"


def _annotations(coco, image_id: int) -> tuple[list[dict], list[dict]]:
    anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=[image_id])), key=lambda a: a["id"])
    objects = [a for a in anns if not a.get("iscrowd", 0)]
    crowds = [a for a in anns if a.get("iscrowd", 0)]
    return objects, crowds


def _decode(coco, annotation_path: Path, ann: dict, shape: tuple[int, int]) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # pycocotools' own numpy-2 deprecation notice, once per decode: not ours to fix.
            warnings.simplefilter("ignore", DeprecationWarning)
            mask = coco.annToMask(ann)
    except Exception as exc:  # pycocotools raises bare Exceptions for malformed segments
        raise SampleError(
            annotation_path, f"annotation {ann['id']}: bad segmentation ({exc})"
        ) from None
    if mask.shape != shape:
        raise SampleError(
            annotation_path,
            f"annotation {ann['id']}: mask is {mask.shape[0]}x{mask.shape[1]}, image record "
            f"says {shape[0]}x{shape[1]}",
        )
    return mask.astype(bool)


def _load(coco, root: Path, image_id: int) -> list[Sample]:
    record = coco.imgs[image_id]
    image_path = root / IMAGES / image_file_name(record)
    annotation_path = root / ANNOTATIONS
    image = read_rgb(image_path)
    shape = (int(record["height"]), int(record["width"]))
    if image.shape[:2] != shape:
        raise SampleError(
            image_path,
            f"image is {image.shape[0]}x{image.shape[1]} but its annotation record says "
            f"{shape[0]}x{shape[1]}",
        )
    object_anns, crowd_anns = _annotations(coco, image_id)
    crowd = np.zeros(shape, dtype=bool)
    for ann in crowd_anns:
        crowd |= _decode(coco, annotation_path, ann, shape)
    objects, notes = [], []
    for ann in object_anns:
        mask = _decode(coco, annotation_path, ann, shape)
        if not mask.any():
            notes.append(f"{annotation_path}: {_empty_annotation(ann, image_id)}")
            continue
        gt = mask.astype(np.int8)
        gt[crowd & ~mask] = -1
        objects.append((int(ann["id"]), gt))
    return make_samples(DATASET, str(image_id), image, image_path, annotation_path, objects, notes)


def _empty_annotation(ann: dict, image_id: int) -> str:
    return f"annotation {ann['id']} of image {image_id} has an empty mask (skipped)"


def list_cocolvis(root: Path) -> list[SampleRef]:
    coco = load_coco(root / ANNOTATIONS)
    refs = []
    for image_id in sorted(coco.imgs):
        objects, _ = _annotations(coco, image_id)
        if not objects:
            continue
        image_path = root / IMAGES / image_file_name(coco.imgs[image_id])
        files = (image_path, root / ANNOTATIONS)
        refs.append(SampleRef(DATASET, str(image_id), files, partial(_load, coco, root, image_id)))
    return refs


def check_cocolvis_layout(root: Path) -> list[SampleError]:
    return [SampleError(p, "hidden file") for p in hidden_entries(root / IMAGES)]


COCOLVIS = register(
    DatasetSpec(
        name="cocolvis",
        folder="COCO_LVIS",
        list_samples=list_cocolvis,
        expected_instances=None,
        citation="Lin et al.: Microsoft COCO, ECCV 2014; Gupta et al.: LVIS, CVPR 2019",
        url="https://cocodataset.org/#download",
        notes=(
            "COCO-style JSON via pycocotools: COCO_LVIS/annotations.json + images/. No official "
            "count (depends on the annotation file). Crowd regions are ignore; ids "
            "<image id>#<annotation id>."
        ),
        layout=(ANNOTATIONS, IMAGES),
        check_layout=check_cocolvis_layout,
    )
)
