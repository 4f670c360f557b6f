"""Fill in what a run made before the `biou` and `gt_area` columns lacks, from the masks it
saved (`bench run --save-masks`) and the dataset's ground truth; no model runs.

The journal is the run's record (the parquet file is rebuilt from it), so each instance's
journal entry gets its `bious` and `gt_area`, the journal is replaced atomically, and
`trajectories.parquet` is rebuilt. Instances without saved masks keep no boundary IoU, and
`bench summary` keeps saying mBIoU is unavailable for them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import protocol


@dataclass
class RescoreResult:
    filled: int = 0  # instances that got a boundary IoU per click
    missing_masks: list[str] = field(default_factory=list)  # dataset/sample_id
    missing_samples: list[str] = field(default_factory=list)  # no longer in the dataset


def _instance_bious(gt: np.ndarray, masks: np.ndarray, n_clicks: int) -> list[float | None]:
    target = protocol.BoundaryTarget.from_gt(gt)
    out: list[float | None] = []
    for k in range(n_clicks):
        value = protocol.boundary_iou_from_target(target, masks[k]) if k < len(masks) else None
        out.append(None if value is None or np.isnan(value) else float(np.float32(value)))
    return out


def rescore(run_dir: Path, data_root: Path | None = None) -> RescoreResult:
    """Compute `bious` and `gt_area` of every instance with saved masks (see module doc)."""
    from bench.datasets import get_dataset, list_samples
    from bench.store import JOURNAL, MANIFEST, ResultStore, load_masks

    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / MANIFEST).read_text())
    store = ResultStore(run_dir)
    store.lock()
    try:
        entries = list(store.entries())
        wanted: dict[str, set[str]] = {}
        for entry in entries:
            for inst in entry["instances"]:
                wanted.setdefault(entry["dataset"], set()).add(inst["sample_id"])
        result = RescoreResult()
        computed: dict[tuple[str, str], tuple[list[float | None], int]] = {}
        for dataset, ids in wanted.items():
            recorded = (manifest.get("datasets") or {}).get(dataset, {}).get("root")
            if data_root is not None:
                refs = list_samples(dataset, data_root)
            elif recorded and Path(recorded).is_dir():
                refs = get_dataset(dataset).list_samples(Path(recorded))
            else:
                refs = list_samples(dataset)
            lengths = {
                inst["sample_id"]: len(inst["ious"])
                for entry in entries
                if entry["dataset"] == dataset
                for inst in entry["instances"]
            }
            for ref in refs:
                if not any(i == ref.id or i.startswith(ref.id) for i in ids):
                    continue
                for sample in ref.load():
                    if sample.id not in ids:
                        continue
                    path = run_dir / "masks" / dataset / f"{sample.id.replace('/', '_')}.npz"
                    area = int(np.count_nonzero(sample.gt == 1))
                    if not path.is_file():
                        result.missing_masks.append(f"{dataset}/{sample.id}")
                        computed[(dataset, sample.id)] = ([], area)
                        continue
                    masks = load_masks(path)
                    if masks.shape[1:] != sample.gt.shape:
                        raise ValueError(
                            f"{path}: saved masks are {masks.shape[1:]}, the image "
                            f"{sample.gt.shape}; not the same instance"
                        )
                    bious = _instance_bious(sample.gt, masks, lengths[sample.id])
                    computed[(dataset, sample.id)] = (bious, area)
                    result.filled += 1
            found = {sid for (d, sid) in computed if d == dataset}
            result.missing_samples += [f"{dataset}/{s}" for s in sorted(ids - found)]
        lines = []
        for entry in entries:
            for inst in entry["instances"]:
                bious, area = computed.get((entry["dataset"], inst["sample_id"]), ([], None))
                if bious:
                    inst["bious"] = bious
                if area is not None:
                    inst["gt_area"] = area
            lines.append(json.dumps(entry, allow_nan=False))
        tmp = run_dir / (JOURNAL + ".tmp")
        tmp.write_text("".join(line + "\n" for line in lines))
        os.replace(tmp, run_dir / JOURNAL)
        store.finalize()
    finally:
        store.unlock()
    return result
