"""Instances per second of a SAM-family model with and without the embedding cache, on a
multi-object COCO-format set, in one process.

Why: SAM-style models spend almost all their time in the image encoder, and datasets with several
objects per image (PascalVOC 2.36 instances per image, SBD 2.33) encode each image once per
object without the cache (`bench.adapters.sam.cache`). The cache can at most divide the
encoder's work by the objects per image; the decoder's clicks are unchanged.

The set is built from the shared GrabCut images as a COCO-format file (`images`, `annotations`
with uncompressed RLE `segmentation`, column-major as pycocotools writes it): the first
`--images` images, each with 3, 2, 2, 3, 2, 2, ... objects (2.33 per image, SBD's ratio): the
official object, and the parts of it left / right of its bounding box's middle column (third
object: above its middle row). It is read back with the small reader below into one entry per
image, every object an instance, and run through the real engine (`evaluate_dataset`, batch
`--batch-size`) twice with the same predictor settings: `embedding_cache=0` (one encoder pass per
instance) and the default cache. The model has random weights in the official format (the cost of
the released ones). Columns: instances, encoder passes, wall seconds, instances/s, process CPU
seconds and instances per CPU second, and both ratios; `same` says whether clicks and IoUs are
bit-identical. On a shared machine the CPU ratio is the steadier figure (the wall ratio moves
with other jobs' load between the two phases); with one thread both agree on a quiet machine.

    python benchmarks/bench_embedding_cache.py [--model sam-vit-b] [--images 3] [--max-clicks 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.clicks import make_click_model
from bench.datasets import list_samples
from bench.engine.instance import ProtocolSettings
from bench.engine.loop import evaluate_dataset
from bench.sample import Sample, SampleRef

ROOT = Path(__file__).resolve().parent.parent
OBJECT_PATTERN = (3, 2, 2)  # objects per image, repeated: 7 / 3 = 2.33 (SBD 6,671 / 2,857)
DATASET = "COCO-multi-object"


# COCO uncompressed RLE (pycocotools `frPyObjects` / `decode` of {"size", "counts": list}):
# run lengths over the column-major (Fortran-order) flattened mask, starting with zeros.
def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    height, width = rle["size"]
    values = np.zeros(len(rle["counts"]), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, rle["counts"])
    if flat.size != height * width:
        raise ValueError(f"RLE counts sum to {flat.size}, expected {height} x {width}")
    return flat.reshape((height, width), order="F")


def object_parts(gt: np.ndarray, count: int) -> list[np.ndarray]:
    """The object, then its parts left / right of the bounding box's middle column, then above
    its middle row: `count` masks."""
    obj = gt == 1
    rows, cols = np.nonzero(obj)
    mid_col = (cols.min() + cols.max() + 1) // 2
    mid_row = (rows.min() + rows.max() + 1) // 2
    column = np.arange(obj.shape[1])[None, :]
    row = np.arange(obj.shape[0])[:, None]
    parts = [obj, obj & (column < mid_col), obj & (column >= mid_col), obj & (row < mid_row)]
    return parts[:count]


def build_coco_fixture(data_root: Path, images: int, out: Path) -> Path:
    """A COCO-format JSON over the first `images` GrabCut images (file paths absolute)."""
    refs = list_samples("grabcut", data_root)[:images]
    coco: dict[str, Any] = {"images": [], "annotations": [], "categories": [{"id": 1}]}
    for index, ref in enumerate(refs):
        sample = ref.load()[0]
        height, width = sample.gt.shape
        coco["images"].append(
            {"id": index + 1, "file_name": str(sample.image_path), "height": height, "width": width}
        )
        for mask in object_parts(sample.gt, OBJECT_PATTERN[index % len(OBJECT_PATTERN)]):
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": index + 1,
                    "category_id": 1,
                    "iscrowd": 0,
                    "area": int(mask.sum()),
                    "segmentation": rle_encode(mask),
                }
            )
    out.write_text(json.dumps(coco))
    return out


def read_coco(path: Path) -> list[SampleRef]:
    """One entry per image (every annotation of it an instance), in the file's image order."""
    coco = json.loads(path.read_text())
    by_image: dict[int, list[dict[str, Any]]] = {}
    for annotation in coco["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)

    def loader(info: dict[str, Any]):
        def load() -> list[Sample]:
            image_path = Path(info["file_name"])
            image = np.array(Image.open(image_path).convert("RGB"))
            return [
                Sample(
                    f"{info['id']}_{a['id']}",
                    image,
                    rle_decode(a["segmentation"]).astype(np.int8),
                    DATASET,
                    image_path=image_path,
                )
                for a in by_image.get(info["id"], [])
            ]

        return load

    return [
        SampleRef(DATASET, str(info["id"]), (Path(info["file_name"]),), loader(info))
        for info in coco["images"]
    ]


class CountingEncoder:
    """Wraps a backend's `encode`, counting the image encoder's passes."""

    def __init__(self, backend: Any) -> None:
        self.inner = backend.encode
        self.calls = 0
        backend.encode = self

    def __call__(self, image: np.ndarray) -> Any:
        self.calls += 1
        return self.inner(image)


def evaluate(
    predictor: Any, refs: Sequence[SampleRef], max_clicks: int, batch_size: int
) -> list[Any]:
    """Every instance record of one engine run, in entry and instance order."""
    entries: list[Any] = []
    evaluate_dataset(
        predictor,
        DATASET,
        list(enumerate(refs)),
        ProtocolSettings(max_clicks=max_clicks),
        make_click_model("official"),
        entries.append,
        batch_size=batch_size,
    )
    entries.sort(key=lambda e: e.index)
    return [instance for entry in entries for instance in entry.instances]


def trajectories(records: Sequence[Any]) -> list[tuple]:
    return [(r.sample_id, tuple(r.clicks), tuple(float(i) for i in r.ious)) for r in records]


def random_predictor(model: str, embedding_cache: int) -> Any:
    from bench.adapters.sam import official
    from bench.adapters.sam.models import VARIANTS
    from bench.adapters.sam.predictor import predictor_for_network

    torch.manual_seed(0)
    network = official.build_network(VARIANTS[model])
    return predictor_for_network(VARIANTS[model], network, embedding_cache=embedding_cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sam-vit-b")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--max-clicks", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "datasets")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        path = build_coco_fixture(args.data_root, args.images, Path(folder) / "instances.json")
        refs = read_coco(path)
        n_instances = sum(len(ref.load()) for ref in refs)
        print(
            f"{args.model}, {len(refs)} images, {n_instances} instances "
            f"({n_instances / len(refs):.2f} per image), {args.max_clicks} clicks, "
            f"batch {args.batch_size}, {args.threads} thread(s)"
        )
        rows, runs = [], {}
        for label, size in (("no cache", 0), ("cache", 4)):
            predictor = random_predictor(args.model, size)
            counter = CountingEncoder(predictor.backend)
            tic, cpu_tic = time.perf_counter(), time.process_time()
            records = evaluate(predictor, refs, args.max_clicks, args.batch_size)
            wall, cpu = time.perf_counter() - tic, time.process_time() - cpu_tic
            runs[label] = trajectories(records)
            n = len(records)
            rows.append((label, n, counter.calls, wall, n / wall, cpu, n / cpu))
    print(
        f"{'':10} {'inst':>5} {'encodes':>8} {'wall_s':>8} {'inst/s':>8} {'cpu_s':>8} "
        f"{'inst/cpu_s':>10}"
    )
    for label, n, calls, wall, rate, cpu, cpu_rate in rows:
        print(f"{label:10} {n:5d} {calls:8d} {wall:8.1f} {rate:8.4f} {cpu:8.1f} {cpu_rate:10.4f}")
    same = "yes" if runs["cache"] == runs["no cache"] else "NO"
    print(
        f"ratio (cache / no cache): {rows[1][4] / rows[0][4]:.2f}x instances/s, "
        f"{rows[1][6] / rows[0][6]:.2f}x instances per CPU second; trajectories identical: {same}"
    )


if __name__ == "__main__":
    main()
