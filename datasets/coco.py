"""Own data as a COCO instance file: `--datasets coco:ANNOTATIONS.json[,images=DIR,...]`.

Every annotation with `iscrowd: 0` is one instance, whether its segmentation is a polygon
list, an RLE or an uncompressed RLE (pycocotools `annToMask`, the COCO API's own decoding).
Annotations with `iscrowd: 1` are never evaluated as instances; by default (`crowd=ignore`)
their pixels are void for the other instances of the image, as a crowd region is in COCO's
own evaluation, so a mask's "unknown" band can be written as a crowd annotation
(`crowd=skip` drops them instead).

Order: images in the file's `images` order (those without instances are not listed),
instances in the file's `annotations` order. Entry ids are the image file names without
suffix, instance ids `<entry>#<annotation id>`. Images are found at `DIR/file_name`,
`DIR` defaulting to the JSON file's folder. Options: `images`, `name`, `crowd`, `citation`,
`expected_images`, `expected_instances`.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from bench.datasets import DatasetSpec
from bench.datasets._io import make_samples, read_rgb
from bench.sample import IGNORE, Sample, SampleError, SampleRef

CROWD_RULES = ("ignore", "skip")
LISTING = "images in the file's order, instances in the annotations' order"
_KEYS = ("images", "name", "crowd", "citation", "expected_images", "expected_instances")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: COCO annotation file does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{path}: not a COCO instance file (no 'images' list)")
    if not isinstance(data.get("annotations"), list):
        raise ValueError(f"{path}: not a COCO instance file (no 'annotations' list)")
    return data


def _ann_mask(ann: dict[str, Any], h: int, w: int, json_path: Path) -> np.ndarray:
    """pycocotools `COCO.annToRLE` + `decode` without building a whole COCO index."""
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    try:
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
            rle = mask_utils.frPyObjects(seg, h, w)
        elif isinstance(seg, dict):
            rle = seg
        else:
            raise TypeError("no polygon or RLE")
        return mask_utils.decode(rle).astype(bool)
    except (TypeError, ValueError, KeyError) as exc:
        raise SampleError(
            json_path, f"annotation {ann.get('id')}: unreadable segmentation ({exc})"
        ) from None


def _load(
    name: str,
    json_path: Path,
    image_path: Path,
    entry: str,
    size: tuple[int, int],
    anns: list[dict[str, Any]],
    crowds: list[dict[str, Any]],
) -> list[Sample]:
    image = read_rgb(image_path)
    if image.shape[:2] != size:
        raise SampleError(
            image_path,
            f"image is {image.shape[0]}x{image.shape[1]} but {json_path.name} says "
            f"{size[0]}x{size[1]}",
        )
    void = np.zeros(size, dtype=bool)
    for ann in crowds:
        void |= _ann_mask(ann, *size, json_path)
    objects = []
    for index, ann in enumerate(anns):
        obj = _ann_mask(ann, *size, json_path)
        gt = obj.astype(np.int8)
        gt[void & ~obj] = IGNORE
        objects.append((ann.get("id", index), gt))
    return make_samples(name, entry, image, image_path, json_path, objects)


def list_coco(root: Path, json_path: Path, name: str, crowd: str) -> list[SampleRef]:
    data = _read(json_path)
    anns: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    crowds: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0):
            if crowd == "ignore":
                crowds[ann.get("image_id")].append(ann)
        else:
            anns[ann.get("image_id")].append(ann)
    refs = []
    for info in data["images"]:
        if not anns.get(info.get("id")):
            continue
        try:
            file_name, size = str(info["file_name"]), (int(info["height"]), int(info["width"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{json_path}: image {info.get('id')}: bad entry ({exc})") from None
        image_path = root / file_name
        entry = str(PurePosixPath(file_name).with_suffix(""))
        load = partial(
            _load, name, json_path, image_path, entry, size, anns[info["id"]], crowds[info["id"]]
        )
        refs.append(SampleRef(name, entry, (image_path, json_path), load))
    return refs


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def to_coco(refs: list[SampleRef]) -> tuple[dict[str, Any], list[str]]:
    """Any dataset's entries as a COCO instance file (the inverse of `coco:`), and the
    entries that could not be read (`path: problem`, left out).

    Each instance becomes an RLE annotation; an image's ignore pixels become one `iscrowd`
    annotation, which `coco:` reads back as ignore (crowd=ignore). `file_name` is relative to
    the common folder of the images (give it as `images=` when reading the file back).
    """
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    skipped: list[str] = []
    loaded = []
    for ref in refs:
        try:
            loaded.append(ref.load())
        except SampleError as exc:
            skipped.append(str(exc))
    paths = [s[0].image_path for s in loaded if s and s[0].image_path is not None]
    base = Path(os.path.commonpath([p.parent for p in paths])) if paths else Path()
    for image_id, samples in enumerate(loaded, 1):
        first = samples[0]
        h, w = first.gt.shape
        name = first.image_path.relative_to(base).as_posix() if first.image_path else first.id
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        void = np.zeros((h, w), dtype=bool)
        for sample in samples:
            obj = sample.gt == 1
            void |= sample.gt == IGNORE
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                 "iscrowd": 0, "area": int(obj.sum()), "segmentation": _rle(obj)}
            )  # fmt: skip
        if void.any():
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                 "iscrowd": 1, "area": int(void.sum()), "segmentation": _rle(void)}
            )  # fmt: skip
    categories = [{"id": 1, "name": "object"}]
    return {"images": images, "annotations": annotations, "categories": categories}, skipped


def coco_dataset(json_path: Path, options: dict[str, Any], text: str) -> DatasetSpec:
    """`coco:ANNOTATIONS.json,...` -> a spec rooted at the images folder."""
    from bench.datasets.resolve import refuse_taken

    unknown = sorted(set(options) - set(_KEYS))
    if unknown:
        raise ValueError(f"--datasets {text}: unknown option(s) {', '.join(unknown)}")
    json_path = json_path.expanduser().resolve()
    if not json_path.is_file():
        raise FileNotFoundError(f"{text}: {json_path} does not exist")
    images = Path(str(options.get("images", json_path.parent))).expanduser().resolve()
    if not images.is_dir():
        raise FileNotFoundError(f"{text}: images folder {images} does not exist")
    name = str(options.get("name", json_path.stem))
    crowd = str(options.get("crowd", "ignore"))
    if crowd not in CROWD_RULES:
        raise ValueError(f"--datasets {text}: crowd={crowd!r}; use one of {CROWD_RULES}")
    for key in ("expected_images", "expected_instances"):
        if key in options and not isinstance(options[key], int):
            raise ValueError(f"--datasets {text}: {key} must be an integer")
    refuse_taken(name, f"coco:{json_path}")
    return DatasetSpec(
        name=name,
        folder=name,
        list_samples=partial(list_coco, json_path=json_path, name=name, crowd=crowd),
        expected_instances=options.get("expected_instances"),
        expected_images=options.get("expected_images"),
        citation=str(options.get("citation", "")),
        notes=f"COCO instance file {json_path}; iscrowd annotations: {crowd}",
        bundled_root=images,
        origin=f"coco:{json_path}",
        manifest={
            "spec": text,
            "annotations": str(json_path),
            "crowd": crowd,
            "listing": LISTING,
            "image_orientation": "EXIF Orientation applied (cv2.imread, as official loaders)",
        },
    )
