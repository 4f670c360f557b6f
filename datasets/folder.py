"""A researcher's own data with no code: `--datasets folder:PATH[,rule=...,ignore=...,name=...]`.

PATH holds `images/` and `masks/`; an image and its mask share the file stem
(`images/cat.jpg` + `masks/cat.png`), in any format OpenCV reads. Images are listed in
code-point order of their file names (as the official folder loaders' `sorted(glob)`), so
sample ids are the image stems and instance ids `<stem>#<id>` for instance masks.

Mask rules (`rule=`):
- `gt128` (default): a binary mask, object where the largest channel value is > 128, or
  exactly 1, so 0/255 and 0/1 masks both work (GrabCut's official rule, whose raw 1 is object);
- `nonzero`: object where any channel is non-zero (DAVIS's rule);
- `instances`: an instance-id mask, each non-zero id one instance in ascending order; a
  single-channel file (8 or 16 bit) gives the ids directly, a colour file `R*65536 + G*256 + B`.
`ignore=V` marks pixels of value (or id) V as void for every instance (GrabCut's 128 band).

Options go in the spec or in a dataset card `PATH/iseg-dataset.toml` (the spec wins):
`name`, `rule`, `ignore`, `images`, `masks` (sub-folder names), `citation`, `url`, `notes`,
`expected_images`, `expected_instances` (then `bench datasets verify` checks the counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from bench.datasets import DatasetSpec
from bench.datasets._io import (
    ObjectMasks,
    alpha_only_note,
    hidden_entries,
    make_samples,
    read_color,
    read_rgb,
    read_unchanged,
    unresolved_links,
)
from bench.sample import IGNORE, Sample, SampleError, SampleRef

CARD = "iseg-dataset.toml"
RULES = ("gt128", "nonzero", "instances")
IMAGE_SUFFIXES = frozenset(
    [
        ".bmp",
        ".dib",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jp2",
        ".png",
        ".webp",
        ".pbm",
        ".pgm",
        ".ppm",
        ".pnm",
        ".tif",
        ".tiff",
    ]
)
LISTING = "images sorted by file name (code points); masks matched by file stem"
_TEXT_KEYS = ("name", "rule", "images", "masks", "citation", "url", "notes")
_INT_KEYS = ("ignore", "expected_images", "expected_instances")


@dataclass(frozen=True)
class FolderOptions:
    name: str
    rule: str = "gt128"
    ignore: int | None = None
    images: str = "images"
    masks: str = "masks"
    citation: str = ""
    url: str = ""
    notes: str = ""
    expected_images: int | None = None
    expected_instances: int | None = None


def read_card(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid TOML dataset card ({exc})") from None


def parse_options(values: dict[str, Any], default_name: str, where: str) -> FolderOptions:
    """Checked options; `where` names their source in errors (the card or the spec)."""
    unknown = sorted(set(values) - {*_TEXT_KEYS, *_INT_KEYS})
    if unknown:
        known = ", ".join((*_TEXT_KEYS, *_INT_KEYS))
        raise ValueError(f"{where}: unknown option(s) {', '.join(unknown)}; known: {known}")
    for key in _INT_KEYS:
        if key in values and (isinstance(values[key], bool) or not isinstance(values[key], int)):
            raise ValueError(f"{where}: {key} must be an integer, got {values[key]!r}")
    text = {k: str(values[k]) for k in _TEXT_KEYS if k in values}
    numbers = {k: values[k] for k in _INT_KEYS if k in values}
    options = FolderOptions(**{"name": default_name, **text}, **numbers)
    if options.rule not in RULES:
        raise ValueError(f"{where}: rule={options.rule!r}; use one of {', '.join(RULES)}")
    if not options.name.strip() or any(c in options.name for c in ",:/\\"):
        raise ValueError(f"{where}: name={options.name!r} must be non-empty, without , : / \\")
    return options


def decode_mask(path: Path, rule: str, ignore: int | None) -> ObjectMasks:
    """One mask file -> objects (label or None, tri-state gt) under `rule` (module docstring)."""
    if rule == "instances":
        raw = read_unchanged(path)
        if raw.ndim == 3:
            bgr = raw[:, :, :3].astype(np.int64)
            ids = bgr[:, :, 2] * 65536 + bgr[:, :, 1] * 256 + bgr[:, :, 0]
        else:
            ids = raw.astype(np.int64)
        void = ids == ignore if ignore is not None else np.zeros(ids.shape, dtype=bool)
        objects = []
        for label in np.unique(ids[(ids != 0) & ~void]).tolist():
            gt = (ids == label).astype(np.int8)
            gt[void] = IGNORE
            objects.append((int(label), gt))
        return objects
    value = read_color(path).max(axis=2)
    gt = ((value > 128) | (value == 1)) if rule == "gt128" else value > 0
    gt = gt.astype(np.int8)
    if ignore is not None:
        gt[value == ignore] = IGNORE
    return [(None, gt)]


def mask_warnings(path: Path, rule: str, ignore: int | None) -> list[str]:
    """`gt128` masks with values other than 0, 1, 255 (and the ignore value): anti-aliased
    or re-saved masks that the threshold maps silently."""
    if rule != "gt128":
        return []
    value = read_color(path).max(axis=2)
    clean = (0, 1, 255) if ignore is None else (0, 1, 255, ignore)
    odd = ~np.isin(value, clean)
    count = int(np.count_nonzero(odd))
    if not count:
        return []
    to_object = int(np.count_nonzero(odd & (value > 128)))
    return [
        f"{path}: {count} mask pixel(s) with values other than {', '.join(map(str, clean))}; "
        f"the > 128 rule maps {to_object} to object and {count - to_object} to background"
    ]


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder is missing")
    names = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    return [folder / n for n in names]


def _masks(folder: Path) -> dict[str, list[Path]]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder is missing")
    masks: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            masks.setdefault(path.stem, []).append(path)
    return masks


def _load(options: FolderOptions, image_path: Path, mask_path: Path | None) -> list[Sample]:
    sid = image_path.stem
    if mask_path is None:
        raise SampleError(
            image_path, f"mask is missing (no file named {sid}.* in {options.masks}/)"
        )
    image = read_rgb(image_path)
    objects = decode_mask(mask_path, options.rule, options.ignore)
    if not objects:
        raise SampleError(
            mask_path,
            f"mask has no object pixels under rule={options.rule}{alpha_only_note(mask_path)}",
        )
    notes = mask_warnings(mask_path, options.rule, options.ignore)
    return make_samples(options.name, sid, image, image_path, mask_path, objects, notes)


def list_folder(root: Path, options: FolderOptions) -> list[SampleRef]:
    masks = _masks(root / options.masks)
    refs = []
    for image_path in _images(root / options.images):
        found = masks.get(image_path.stem)
        mask_path = found[0] if found else None
        files = (image_path,) if mask_path is None else (image_path, mask_path)
        load = partial(_load, options, image_path, mask_path)
        refs.append(SampleRef(options.name, image_path.stem, files, load))
    return refs


def check_folder(root: Path, options: FolderOptions) -> list[SampleError]:
    """For `verify`: files that are not listed, masks no image uses, ambiguous stems."""
    image_dir, mask_dir = root / options.images, root / options.masks
    problems = [
        SampleError(p, "hidden file (not listed)")
        for p in (*hidden_entries(image_dir), *hidden_entries(mask_dir))
    ]
    problems += unresolved_links(image_dir) + unresolved_links(mask_dir)
    if not (image_dir.is_dir() and mask_dir.is_dir()):
        return problems
    problems += [
        SampleError(p, f"not listed: the suffix is not an image format ({p.suffix or 'none'})")
        for p in sorted(image_dir.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in IMAGE_SUFFIXES
    ]
    stems = {p.stem for p in _images(image_dir)}
    for stem, paths in _masks(mask_dir).items():
        if len(paths) > 1:
            others = ", ".join(p.name for p in paths[1:])
            problems.append(SampleError(paths[0], f"several masks named {stem}.* ({others})"))
        if stem not in stems:
            problems.append(SampleError(paths[0], "mask without an image (never evaluated)"))
    return problems


def folder_dataset(path: Path, spec_options: dict[str, Any], text: str) -> DatasetSpec:
    """`folder:PATH,...` -> a spec whose root is PATH (no --data-root needed)."""
    from bench.datasets.resolve import refuse_taken

    root = path.expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{text}: folder {root} does not exist")
    card_path = root / CARD
    card = read_card(card_path) if card_path.is_file() else {}
    if card:
        parse_options(card, root.name, str(card_path))  # name the card in its own errors
    options = parse_options({**card, **spec_options}, root.name, f"--datasets {text}")
    refuse_taken(options.name, f"folder:{root}")
    return DatasetSpec(
        name=options.name,
        folder=options.name,
        list_samples=partial(list_folder, options=options),
        expected_instances=options.expected_instances,
        expected_images=options.expected_images,
        citation=options.citation,
        url=options.url,
        notes=options.notes or f"Own data read with rule={options.rule}",
        bundled_root=root,
        layout=(options.images, options.masks),
        check_layout=partial(check_folder, options=options),
        origin=f"folder:{root}",
        manifest={
            "spec": text,
            "rule": options.rule,
            "ignore": options.ignore,
            "card": str(card_path) if card else None,
            "listing": LISTING,
            "image_orientation": "EXIF Orientation applied (cv2.imread, as official loaders)",
        },
    )
