"""Run directory: `manifest.json`, an append-only journal, and `trajectories.parquet`.

Parquet files cannot be appended to safely, so a run writes one JSON line per finished
dataset entry to `journal.jsonl` (flushed and fsynced), and `trajectories.parquet` is
rebuilt from the journal at the end. A crash loses at most the entry in flight: a torn last
line is cut off on reopen, and the run resumes with the first entry not in the journal.
Entries may finish in any order (the batched engine interleaves instances); each journal
line carries its listing index, and `trajectories.parquet` is sorted in official order
(dataset order of the manifest, then listing index), so a batched or sharded run's file
equals a batch-1 run's row for row. Rows carry no order-dependent state, so shards of a run
merge by concatenation.
"""

from __future__ import annotations

import fcntl
import json
import math
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

LOCK = ".lock"

COLUMNS = [
    "dataset",
    "sample_id",
    "click",
    "y",
    "x",
    "positive",
    "iou",
    "model_s",
    "harness_s",
    "start_s",
    "biou",
    "gt_area",
]
PROTOCOL_COLUMNS = COLUMNS[:7]
"""The columns that identical runs reproduce exactly (the rest are timings and the boundary IoU,
absent (NaN) in runs made before it was stored)."""


class RunLockedError(RuntimeError):
    """Another process is writing the same run directory."""


def dumps_strict(value: Any, **kwargs: Any) -> str:
    """JSON that every parser reads: NaN and infinities are refused, not written bare."""
    return json.dumps(value, allow_nan=False, **kwargs)


def _iou_to_json(value: float) -> float | None:
    # float() of a float32 is exact and JSON round-trips it exactly; NaN (0/0 IoU) is null.
    value = float(value)
    return None if math.isnan(value) else value


@dataclass
class InstanceRecord:
    """One evaluated instance: its clicks, float32 IoUs and per-click timings."""

    sample_id: str
    clicks: list[tuple[int, int, bool]] = field(default_factory=list)
    ious: list[np.float32] = field(default_factory=list)
    model_s: list[float] = field(default_factory=list)
    harness_s: list[float] = field(default_factory=list)
    start_s: float = 0.0  # predictor.start / open_instance (a SAM encoder's whole cost)
    bious: list[np.float32] | None = None  # boundary IoU per click (None: not computed)
    gt_area: int | None = None  # object pixels of the GT (for metrics by object size)

    def to_json(self) -> dict[str, Any]:
        out = {
            "sample_id": self.sample_id,
            "clicks": [[int(y), int(x), bool(p)] for y, x, p in self.clicks],
            "ious": [_iou_to_json(v) for v in self.ious],
            "model_s": [round(v, 9) for v in self.model_s],
            "harness_s": [round(v, 9) for v in self.harness_s],
            "start_s": round(self.start_s, 9),
        }
        if self.bious is not None:
            out["bious"] = [_iou_to_json(v) for v in self.bious]
        if self.gt_area is not None:
            out["gt_area"] = int(self.gt_area)
        return out


@dataclass
class EntryRecord:
    """Everything one dataset entry (`SampleRef`) produced: instances or errors."""

    dataset: str
    ref_id: str
    index: int | None = None  # position in the dataset's official listing
    instances: list[InstanceRecord] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dataset": self.dataset, "ref": self.ref_id}
        if self.index is not None:
            out["index"] = self.index
        out["instances"] = [i.to_json() for i in self.instances]
        out["errors"] = self.errors
        if self.warnings:
            out["warnings"] = self.warnings
        return out


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
        self._lock_fh: Any = None

    # --- one writer at a time ---------------------------------------------------------------
    def lock(self) -> None:
        """Take the run directory for this process, or refuse at once.

        An advisory `flock` on `.lock`: the kernel drops it when the process dies, even by
        SIGKILL, so a crashed run never blocks its own resume (a stale file is harmless).
        """
        path = self.run_dir / LOCK
        fh = path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise RunLockedError(
                f"{self.run_dir} is being written by another bench run (pid {holder}, lock "
                f"{path}); wait for it to finish or use another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._lock_fh = fh
        # Only the writer repairs: a reader (report, summary) or a refused second run must
        # never cut a line that the lock holder is still writing.
        _repair_torn_tail(self.journal_path)

    def unlock(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    # --- manifest -------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.run_dir / MANIFEST

    def read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{self.manifest_path}: not valid JSON ({exc})") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        tmp = self.manifest_path.with_suffix(".json.tmp")
        text = dumps_strict(manifest, indent=2, sort_keys=False, default=str) + "\n"
        with tmp.open("w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.manifest_path)

    # --- journal --------------------------------------------------------------------------
    def entries(self) -> Iterator[dict[str, Any]]:
        """Journal entries in file order; a corrupt line is an error naming its number.

        Only the last line can be torn by a crash (the writer cuts it when it takes the lock;
        a reader skips it: it may be a line still being written); damage anywhere else means
        the file was edited or the disk failed, and guessing would lose results silently.
        """
        if not self.journal_path.exists():
            return
        with self.journal_path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.endswith(b"\n"):
                    return  # torn or in-flight last line: not a finished entry
                if not raw.strip():
                    continue
                try:
                    entry = json.loads(raw)
                    entry["dataset"], entry["ref"]  # noqa: B018 - the keys every line has
                except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                    raise ValueError(
                        f"{self.journal_path}: line {number} is corrupt; remove that line to "
                        "re-evaluate its entry, or start again with --overwrite"
                    ) from None
                yield entry

    def done(self) -> set[tuple[str, str]]:
        return {(e["dataset"], e["ref"]) for e in self.entries()}

    def append(self, entry: EntryRecord) -> None:
        line = dumps_strict(entry.to_json(), separators=(",", ":")) + "\n"
        with self.journal_path.open("a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def errors(self) -> list[dict[str, str]]:
        return self._problems("errors")

    def warnings(self) -> list[dict[str, str]]:
        return self._problems("warnings")

    def _problems(self, key: str) -> list[dict[str, str]]:
        return [
            {"dataset": e["dataset"], "sample_id": e["ref"], **item}
            for e in self.ordered_entries()
            for item in e.get(key, [])
        ]

    def ordered_entries(self) -> list[dict[str, Any]]:
        """Unique journal entries in official order: manifest dataset order, listing index.

        Journals written before entries carried an index keep their file order, which was
        the official order then.
        """
        manifest = self.read_manifest() or {}
        rank = {name: i for i, name in enumerate(manifest.get("datasets", {}))}
        seen: set[tuple[str, str]] = set()
        unique = []
        for position, entry in enumerate(self.entries()):
            key = (entry["dataset"], entry["ref"])
            if key in seen:  # a duplicate can only come from a hand-merged journal
                continue
            seen.add(key)
            unique.append((position, entry))
        unique.sort(
            key=lambda pe: (
                rank.get(pe[1]["dataset"], len(rank)),
                pe[1].get("index", pe[0]),
                pe[0],
            )
        )
        return [entry for _, entry in unique]

    # --- trajectories ---------------------------------------------------------------------
    def trajectories_from_journal(self) -> pd.DataFrame:
        rows: dict[str, list] = {c: [] for c in COLUMNS}
        for entry in self.ordered_entries():
            for inst in entry["instances"]:
                n = len(inst["ious"])
                rows["dataset"] += [entry["dataset"]] * n
                rows["sample_id"] += [inst["sample_id"]] * n
                rows["click"] += list(range(1, n + 1))
                rows["y"] += [c[0] for c in inst["clicks"]]
                rows["x"] += [c[1] for c in inst["clicks"]]
                rows["positive"] += [c[2] for c in inst["clicks"]]
                rows["iou"] += [math.nan if v is None else v for v in inst["ious"]]
                rows["model_s"] += inst["model_s"]
                rows["harness_s"] += inst["harness_s"]
                rows["start_s"] += ([inst.get("start_s", 0.0)] + [0.0] * (n - 1)) if n else []
                bious = inst.get("bious") or [None] * n
                rows["biou"] += [math.nan if v is None else v for v in bious]
                area = inst.get("gt_area")
                rows["gt_area"] += [math.nan if area is None else float(area)] * n
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
                "start_s": np.asarray(rows["start_s"], dtype=np.float64),
                "biou": np.asarray(rows["biou"], dtype=np.float32),
                "gt_area": np.asarray(rows["gt_area"], dtype=np.float64),
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


def load_masks(path: Path, click: int | None = None) -> np.ndarray:
    """Every saved mask (clicks x H x W bool), or only the one after `click` (1-based; the
    last one when the run stopped earlier) as H x W: unpacking just that mask's bytes keeps a
    large image's report small (a 48-megapixel image's 20 masks are 1 GB as bools)."""
    with np.load(path) as data:
        shape = tuple(int(v) for v in data["shape"])
        packed = data["packed"]
    if click is None:
        bits = np.unpackbits(packed, count=int(np.prod(shape)))
        return bits.reshape(shape).view(bool)
    index = min(max(int(click), 1), shape[0]) - 1
    size = shape[1] * shape[2]
    first = index * size
    start, offset = divmod(first, 8)
    chunk = packed[start : (first + size + 7) // 8 + 1]
    bits = np.unpackbits(chunk)[offset : offset + size]
    return bits.reshape(shape[1:]).view(bool)
