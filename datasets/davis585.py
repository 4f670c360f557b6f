"""DAVIS-585: 585 object-frames of DAVIS videos, with initial masks (ClickSEG).

Official loader: ClickSEG `isegm/data/datasets/davis585.py` `Davis585Dataset(path,
init_mask_mode)` (golden/metrics/README.md section 5b); the official path is
`InterDavis/Selected_480P`, here `<data root>/DAVIS585`. Per sequence folder, each
`<object>_<frame>.png` without `init` in its name is one instance; its image is
`<frame>.jpg` and its initial masks `init_sp_<object>_<frame>.png` (super-pixel) and
`init_stm_<object>_<frame>.png` (STM propagation). GT and initial masks are channel 0 > 128.

Modes (`davis585,mode=...`, ClickSEG's D585_ZERO / D585_SP / D585_STM): `zero` (default: no
initial mask), `sp` or `stm`. With an initial mask the evaluation starts from it, as
ClickSEG's `evaluation.py` does: the first click corrects that mask's errors and the
predictor receives it as its previous mask (`Sample.init_mask`). Both initial masks must exist
in every mode, as the official loader reads both.

Order: the official loader lists with `os.listdir`, which is filesystem order. We sort the
sequence folders and, within each, the GT file names (code points); the manifest records it.
`Sample.dataset` is ClickSEG's `dataset.name`: `D585zero`, `D585sp` or `D585stm`.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from bench.datasets import DatasetSpec, register
from bench.datasets._io import make_samples, read_color, read_rgb
from bench.sample import Sample, SampleError, SampleRef

MODES = ("zero", "sp", "stm")
FOLDER = "DAVIS585"
LISTING = (
    "sorted: sequence folders by name, then GT files by name (the official loader's "
    "os.listdir order is filesystem dependent)"
)


def _channel0(path: Path) -> np.ndarray:
    """`cv2.imread(path)[:, :, 0] > 128` (channel 0 = B)."""
    return read_color(path)[:, :, 0] > 128


def gt_names(folder: Path) -> list[str]:
    """GT files of one sequence: `.png` in the name and no `init` (the official test)."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if ".png" in p.name and "init" not in p.name and not p.name.startswith(".")
    )


def _load(sequence: Path, gt_name: str, mode: str) -> list[Sample]:
    gt_path = sequence / gt_name
    image_path = sequence / gt_name.split("_")[-1].replace(".png", ".jpg")
    inits = {m: sequence / f"init_{m}_{gt_name}" for m in ("stm", "sp")}
    image = read_rgb(image_path)
    gt = _channel0(gt_path).astype(np.int8)
    masks = {m: _channel0(p) for m, p in inits.items()}  # both read in every mode
    samples = make_samples(
        f"D585{mode}", f"{sequence.name}/{Path(gt_name).stem}", image, image_path, gt_path,
        [(None, gt)],
    )  # fmt: skip
    init = masks.get(mode)
    if init is not None and init.shape != gt.shape:
        raise SampleError(inits[mode], f"initial mask is {init.shape}, the GT {gt.shape}")
    return [replace(s, init_mask=init) for s in samples]


def list_davis585(root: Path, mode: str = "zero") -> list[SampleRef]:
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder is missing")
    refs = []
    for sequence in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for name in gt_names(sequence):
            image = sequence / name.split("_")[-1].replace(".png", ".jpg")
            files = (
                image,
                sequence / name,
                *(sequence / f"init_{m}_{name}" for m in ("stm", "sp")),
            )
            load = partial(_load, sequence, name, mode)
            refs.append(SampleRef(f"D585{mode}", f"{sequence.name}/{Path(name).stem}", files, load))
    return refs


def with_mode(spec: DatasetSpec, mode: str = "zero") -> DatasetSpec:
    """`davis585,mode=sp`: the same instances starting from the SP (or STM) initial mask."""
    if mode not in MODES:
        raise ValueError(f"{spec.name}: mode={mode!r}; use one of {', '.join(MODES)}")
    if mode == "zero":
        return spec
    return replace(
        spec,
        name=f"{spec.name}_{mode}",
        list_samples=partial(list_davis585, mode=mode),
        manifest={**spec.manifest, "mode": mode, "dataset_name": f"D585{mode}"},
    )


DAVIS585 = register(
    DatasetSpec(
        name="davis585",
        folder=FOLDER,
        list_samples=list_davis585,
        expected_instances=585,
        expected_images=585,
        citation="Chen et al.: FocalClick, CVPR 2022 (DAVIS-585 from Perazzi et al.: DAVIS, "
        "CVPR 2016)",
        url="https://github.com/alibaba/ClickSEG#datasets",
        notes="mode=zero (default), sp or stm: the initial mask the evaluation starts from. "
        "Listing sorted (the official os.listdir order is filesystem dependent).",
        options=with_mode,
        manifest={"mode": "zero", "dataset_name": "D585zero", "listing": LISTING},
    )
)
