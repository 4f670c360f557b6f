"""Run folders written through `bench.store` from the golden trajectories (the official code's
per-click IoUs of `golden/protocol/*.json`), for tests of what is computed from runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.store import EntryRecord, InstanceRecord, ResultStore

OLD_PROTOCOL = {  # a run from before click models: `click_rule` only
    "max_clicks": 20,
    "pred_thr": 0.49,
    "stop_at_iou": None,
    "click_rule": "official",
    "noc_thresholds": [0.8, 0.8500000000000001, 0.9000000000000001, 0.9500000000000002],
}


def golden_instances(golden: Path, dataset: str) -> list[tuple[str, list[float]]]:
    """(sample id, 20 float32 IoUs) of every instance of GrabCut or DAVIS, in official order."""
    reference = json.loads((golden / "protocol" / f"{dataset}.json").read_text())
    return [
        (f"{inst['image'].rsplit('.', 1)[0]}#{inst['k']}", inst["ious"])
        for inst in reference["instances"]
    ]


def delayed(ious: Sequence[float], clicks: int) -> list[float]:
    """The same IoU sequence `clicks` clicks later (IoU 0 before): NoC + clicks, capped."""
    return [0.0] * clicks + list(ious)[: len(ious) - clicks]


def write_run(
    folder: Path,
    dataset: str,
    instances: Sequence[tuple[str, Sequence[float]]],
    *,
    model: str = "golden",
    protocol: dict[str, Any] | None = None,
    transform: Callable[[Sequence[float]], Sequence[float]] = list,
    fingerprint: str = "golden-listing",
) -> Path:
    """A complete run folder: journal, manifest, trajectories.parquet."""
    store = ResultStore(folder)
    store.write_manifest(
        {
            "status": "complete",
            "model": {"name": model, "options": {}},
            "datasets": {
                dataset.lower(): {"folder": dataset, "fingerprint": fingerprint, "limit": None}
            },
            "protocol": dict(protocol or OLD_PROTOCOL),
            "errors": [],
        }
    )
    for index, (sample_id, ious) in enumerate(instances):
        values = [np.float32(v) for v in transform(ious)]
        record = InstanceRecord(
            sample_id=sample_id,
            clicks=[(0, 0, True)] * len(values),
            ious=values,
            model_s=[0.0] * len(values),
            harness_s=[0.0] * len(values),
        )
        store.append(EntryRecord(dataset.lower(), sample_id, index, [record]))
    store.finalize()
    return folder
