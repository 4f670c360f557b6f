"""Run directory: `manifest.json`, an append-only journal, and `trajectories.parquet`.

Parquet files cannot be appended to safely, so a run writes one JSON line per finished
dataset entry to `journal.jsonl` (flushed and fsynced), and `trajectories.parquet` is
rebuilt from the journal at the end. A crash loses at most the entry in flight: a torn last
line is cut off on reopen, and the run resumes with the first entry not in the journal.
Rows carry no order-dependent state, so shards of a run merge by concatenation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

JOURNAL = "journal.jsonl"
MANIFEST = "manifest.json"
TRAJECTORIES = "trajectories.parquet"
SUMMARY = "summary.csv"

COLUMNS = ["dataset", "sample_id", "click", "y", "x", "positive", "iou", "model_s", "harness_s"]
PROTOCOL_COLUMNS = COLUMNS[:7]
"""The columns that identical runs reproduce exactly (the rest are timings)."""


@dataclass
class InstanceRecord:
    """One evaluated instance: its clicks, float32 IoUs and per-click timings."""

    sample_id: str
    clicks: list[tuple[int, int, bool]] = field(default_factory=list)
    ious: list[np.float32] = field(default_factory=list)
    model_s: list[float] = field(default_factory=list)
    harness_s: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "sample_id": self.sample_id,
            "clicks": [[int(y), int(x), bool(p)] for y, x, p in self.clicks],
            # float() of a float32 is exact and JSON round-trips it exactly.
            "ious": [float(v) for v in self.ious],
            "model_s": [round(v, 9) for v in self.model_s],
            "harness_s": [round(v, 9) for v in self.harness_s],
        }


@dataclass
class EntryRecord:
    """Everything one dataset entry (`SampleRef`) produced: instances or errors."""

    dataset: str
    ref_id: str
    instances: list[InstanceRecord] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "ref": self.ref_id,
            "instances": [i.to_json() for i in self.instances],
            "errors": self.errors,
        }


def _repair_torn_tail(path: Path) -> None:
    """Cut a partially written last line left by a crash."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with path.open("r+b") as fh:
            fh.truncate(keep)


class ResultStore:
    def __init__(self, run_dir: Path | str):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.journal_path = self.run_dir / JOURNAL
        _repair_torn_tail(self.journal_path)

    # --- manifest -------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.run_dir / MANIFEST

    def read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        return json.loads(self.manifest_path.read_text())

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        tmp = self.manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n")
        os.replace(tmp, self.manifest_path)

    # --- journal --------------------------------------------------------------------------
    def entries(self) -> Iterator[dict[str, Any]]:
        if not self.journal_path.exists():
            return
        with self.journal_path.open() as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def done(self) -> set[tuple[str, str]]:
        return {(e["dataset"], e["ref"]) for e in self.entries()}

    def append(self, entry: EntryRecord) -> None:
        line = json.dumps(entry.to_json(), separators=(",", ":")) + "\n"
        with self.journal_path.open("a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def errors(self) -> list[dict[str, str]]:
        return [
            {"dataset": e["dataset"], "sample_id": e["ref"], **err}
            for e in self.entries()
            for err in e["errors"]
        ]

    # --- trajectories ---------------------------------------------------------------------
    def trajectories_from_journal(self) -> pd.DataFrame:
        rows: dict[str, list] = {c: [] for c in COLUMNS}
        seen: set[tuple[str, str]] = set()
        for entry in self.entries():
            key = (entry["dataset"], entry["ref"])
            if key in seen:  # a duplicate can only come from a hand-merged journal
                continue
            seen.add(key)
            for inst in entry["instances"]:
                n = len(inst["ious"])
                rows["dataset"] += [entry["dataset"]] * n
                rows["sample_id"] += [inst["sample_id"]] * n
                rows["click"] += list(range(1, n + 1))
                rows["y"] += [c[0] for c in inst["clicks"]]
                rows["x"] += [c[1] for c in inst["clicks"]]
                rows["positive"] += [c[2] for c in inst["clicks"]]
                rows["iou"] += inst["ious"]
                rows["model_s"] += inst["model_s"]
                rows["harness_s"] += inst["harness_s"]
        return pd.DataFrame(
            {
                "dataset": pd.Series(rows["dataset"], dtype="string"),
                "sample_id": pd.Series(rows["sample_id"], dtype="string"),
                "click": np.asarray(rows["click"], dtype=np.int16),
                "y": np.asarray(rows["y"], dtype=np.int32),
                "x": np.asarray(rows["x"], dtype=np.int32),
                "positive": np.asarray(rows["positive"], dtype=bool),
                "iou": np.asarray(rows["iou"], dtype=np.float32),
                "model_s": np.asarray(rows["model_s"], dtype=np.float64),
                "harness_s": np.asarray(rows["harness_s"], dtype=np.float64),
            }
        )

    def finalize(self) -> pd.DataFrame:
        frame = self.trajectories_from_journal()
        tmp = self.run_dir / (TRAJECTORIES + ".tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, self.run_dir / TRAJECTORIES)
        return frame


def read_trajectories(run_dir: Path | str) -> pd.DataFrame:
    """Trajectories of a run: the parquet file, or the journal of a run still in progress."""
    run_dir = Path(run_dir)
    path = run_dir / TRAJECTORIES
    if path.exists():
        return pd.read_parquet(path)
    if (run_dir / JOURNAL).exists():
        return ResultStore(run_dir).trajectories_from_journal()
    raise FileNotFoundError(f"{run_dir}: no {TRAJECTORIES} or {JOURNAL}; is this a run directory?")


def save_masks(run_dir: Path, dataset: str, sample_id: str, masks: list[np.ndarray]) -> Path:
    """Predicted masks after each click, bit-packed and compressed (for report Figure 7)."""
    stack = np.stack(masks).astype(bool)
    folder = run_dir / "masks" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sample_id}.npz"
    np.savez_compressed(path, packed=np.packbits(stack, axis=None), shape=np.array(stack.shape))
    return path


def load_masks(path: Path) -> np.ndarray:
    with np.load(path) as data:
        shape = tuple(int(v) for v in data["shape"])
        bits = np.unpackbits(data["packed"], count=int(np.prod(shape)))
    return bits.reshape(shape).astype(bool)
