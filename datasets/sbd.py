"""SBD val: 6671 instances of 2857 images, from the raw `.mat` instance annotations.

Official loader: `isegm/data/datasets/sbd.py:SBDEvaluationDataset` (PROTOCOL.md section 8).
It lists (image, instance id) pairs from a cache pickle `val_images_and_ids_list.pkl` that
it writes into the dataset folder on first use; users without that file ask for it
(RITM#40). We build the same list from the raw files: `val.txt` order, then the distinct
non-zero values of `GTinst.Segmentation` ascending (the bincount order). If the official
pickle is present we use its list as is, but we never require it and never write it.

Listing reads only `val.txt` (or the pickle); instance ids are expanded in `load()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import scipy.io

from bench.datasets import DatasetSpec, register
from bench.datasets._io import (
    hidden_entries,
    make_samples,
    read_bytes,
    read_plain_pickle,
    read_rgb,
    read_text_ids,
)
from bench.sample import Sample, SampleError, SampleRef

IMAGES = "img"
INSTANCES = "inst"
SPLIT = "val"
CACHE_PICKLE = f"{SPLIT}_images_and_ids_list.pkl"


def read_instance_map(path: Path) -> np.ndarray:
    """`GTinst.Segmentation` as int32: the first field of the struct, read like the official
    `loadmat(path)['GTinst'][0][0][0]`."""
    read_bytes(path)  # names the file when missing or empty
    try:
        gtinst = scipy.io.loadmat(str(path))["GTinst"]
        record = gtinst[0][0]
        fields = record.dtype.names or ()
        seg = record[0]
    except KeyError:
        raise SampleError(path, "no GTinst struct (not an SBD instance file)") from None
    except (ValueError, TypeError, IndexError, OSError) as exc:
        raise SampleError(path, f"cannot be read as a MATLAB file ({exc})") from None
    if not fields or fields[0] != "Segmentation":
        raise SampleError(path, f"first GTinst field is {fields[:1]}, expected Segmentation")
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise SampleError(path, f"GTinst.Segmentation has shape {seg.shape}, expected H x W")
    return seg.astype(np.int32)


def instance_ids(instances: np.ndarray) -> list[int]:
    """Distinct non-zero values ascending (official `get_labels_with_sizes`, via bincount)."""
    if instances.size and instances.min() < 0:
        values = np.unique(instances)
        return [int(v) for v in values if v > 0]
    return [int(v) for v in np.nonzero(np.bincount(instances.ravel()))[0] if v != 0]


def _load(root: Path, image_id: str, ids: Sequence[int] | None) -> list[Sample]:
    image_path = root / IMAGES / f"{image_id}.jpg"
    mat_path = root / INSTANCES / f"{image_id}.mat"
    image = read_rgb(image_path)
    instances = read_instance_map(mat_path)
    chosen = instance_ids(instances) if ids is None else ids
    # Official gt: pixels equal to the id -> 1, everything else -> 0; no ignore label.
    objects = [(v, (instances == v).astype(np.int8)) for v in chosen]
    return make_samples("SBD", image_id, image, image_path, mat_path, objects)


def _ref(root: Path, image_id: str, ids: Sequence[int] | None) -> SampleRef:
    files = (root / IMAGES / f"{image_id}.jpg", root / INSTANCES / f"{image_id}.mat")
    return SampleRef("SBD", image_id, files, partial(_load, root, image_id, ids))


def _from_cache(path: Path) -> list[tuple[str, int]]:
    content = read_plain_pickle(path)
    try:
        return [(str(name), int(v)) for name, v in content]
    except (TypeError, ValueError):
        raise FileNotFoundError(f"{path}: expected a list of (image id, instance id)") from None


def list_sbd(root: Path) -> list[SampleRef]:
    cache = root / CACHE_PICKLE
    if cache.is_file():
        grouped: dict[str, list[int]] = {}
        for name, v in _from_cache(cache):
            grouped.setdefault(name, []).append(v)
        return [_ref(root, name, ids) for name, ids in grouped.items()]
    split = root / f"{SPLIT}.txt"
    if not split.is_file() and (root / "dataset" / f"{SPLIT}.txt").is_file():
        raise FileNotFoundError(
            f"{split} is missing but {root / 'dataset'} has it: point SBD/ at the `dataset` "
            "folder of the SBD release (benchmark_RELEASE/dataset)"
        )
    return [_ref(root, image_id, None) for image_id in read_text_ids(split)]


def check_sbd_layout(root: Path) -> list[SampleError]:
    return [
        SampleError(p, "hidden file")
        for folder in (root / IMAGES, root / INSTANCES)
        for p in hidden_entries(folder)
    ]


SBD = register(
    DatasetSpec(
        name="sbd",
        folder="SBD",
        list_samples=list_sbd,
        expected_instances=6671,
        expected_images=2857,
        citation="Hariharan et al.: Semantic contours from inverse detectors, ICCV 2011",
        url="http://home.bharathh.info/pubs/codes/SBD/download.html",
        notes=(
            "SBD/ is the release's `dataset` folder (img/, inst/, val.txt). Instance list built "
            "from val.txt + inst/*.mat (GTinst.Segmentation ids ascending), since the official "
            "cache val_images_and_ids_list.pkl is not distributed (RITM#40); the pickle is used "
            "when present and never written. Ids <image>#<instance>."
        ),
        layout=(IMAGES, INSTANCES, f"{SPLIT}.txt"),
        check_layout=check_sbd_layout,
    )
)
