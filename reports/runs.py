"""Reading run folders written by `bench run`: the manifest, the trajectories and, when
present, `profile.csv` and saved masks. Nothing here touches a model, so a report can be
rebuilt from the folders alone (ARCHITECTURE.md, "The one data flow")."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench import metrics, store

TRAJECTORY_COLUMNS = ("dataset", "sample_id", "click", "iou")


class RunFolderError(ValueError):
    """A folder that is not a readable run; the message names the folder and the problem."""


@dataclass(frozen=True, eq=False)
class Run:
    path: Path
    label: str  # unique display name of the method in this report
    manifest: dict[str, Any]
    trajectories: pd.DataFrame
    profile: pd.DataFrame | None

    @property
    def model(self) -> dict[str, Any]:
        return self.manifest.get("model") or {}

    @property
    def model_name(self) -> str:
        return str(self.model.get("name") or self.path.name)

    @property
    def oracle(self) -> bool:
        """The run's predictor declared `oracle = True` and received the ground truth."""
        return is_oracle_manifest(self.manifest)

    @property
    def reference(self) -> str | None:
        ref = self.model.get("reference")
        return str(ref) if ref else None

    @property
    def protocol(self) -> dict[str, Any]:
        return self.manifest.get("protocol") or {}

    @property
    def click_model(self) -> str:
        """`official`, or the simulated user's `--click-model` text and seed."""
        from bench.reports.compare import click_model_label

        return click_model_label(self.protocol)

    @property
    def method_key(self) -> str:
        """What makes two runs the same method: model name, options and checkpoint. Runs of one
        method under several click models form a row group of the robustness table."""
        model = self.model
        return json.dumps(
            [model.get("name"), model.get("options") or {}, model.get("checkpoint_sha256")],
            sort_keys=True,
            default=str,
        )

    @property
    def max_clicks(self) -> int:
        return int(self.protocol.get("max_clicks") or metrics.MAX_CLICKS)

    def dataset_info(self, cli_name: str) -> dict[str, Any]:
        return (self.manifest.get("datasets") or {}).get(cli_name) or {}

    def dataset_label(self, cli_name: str) -> str:
        """The dataset's name in tables: its official folder (`GrabCut`) when the CLI name is
        that folder's, else `folder (cli name)`, so another split sharing a folder
        (`pascalvoc_test`) is never compared with numbers published for the first."""
        folder = str(self.dataset_info(cli_name).get("folder") or cli_name)
        return folder if folder.lower() == cli_name.lower() else f"{folder} ({cli_name})"

    def datasets(self) -> list[str]:
        """CLI names with trajectories, in stored order."""
        return list(dict.fromkeys(self.trajectories["dataset"].astype(str)))

    def masks_path(self, cli_name: str, sample_id: str) -> Path:
        """Where `bench run --save-masks` put them (`bench.store.save_masks`, `/` made `_`)."""
        return self.path / "masks" / cli_name / f"{sample_id.replace('/', '_')}.npz"


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    if not path.is_file():
        raise RunFolderError(f"{folder}: no manifest.json (not a `bench run` output folder)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: not valid JSON ({exc})") from None


def read_trajectories(folder: Path) -> pd.DataFrame:
    """The parquet file, or the journal of a run still in progress (`bench.store`)."""
    try:
        frame = store.read_trajectories(folder)
    except FileNotFoundError as exc:
        raise RunFolderError(str(exc)) from None
    missing = [c for c in TRAJECTORY_COLUMNS if c not in frame.columns]
    if missing:
        raise RunFolderError(f"{folder}: trajectories lack columns {', '.join(missing)}")
    frame["dataset"] = frame["dataset"].astype(str)
    frame["sample_id"] = frame["sample_id"].astype(str)
    return frame


def read_profile(folder: Path) -> pd.DataFrame | None:
    path = folder / "profile.csv"
    return pd.read_csv(path) if path.is_file() else None


def short_model_name(name: str) -> str:
    """`/long/path/plugin.py:make` -> `plugin.py:make`; registered names stay as they are."""
    file_part, sep, attr = name.rpartition(":")
    return f"{Path(file_part).name}{sep}{attr}" if sep and "/" in file_part else name


def is_oracle_manifest(manifest: dict[str, Any]) -> bool:
    return (manifest.get("model") or {}).get("oracle") is True


ORACLE_TAG = " [oracle]"
"""Appended to an oracle run's label wherever the report names it."""


def _unique_labels(folders: list[Path], manifests: list[dict[str, Any]]) -> list[str]:
    """Model name, or `model (folder)` where two runs share a model name; an oracle run's
    label ends in `[oracle]`."""
    names = [
        short_model_name(str((m.get("model") or {}).get("name") or f.name))
        + (ORACLE_TAG if is_oracle_manifest(m) else "")
        for f, m in zip(folders, manifests)
    ]
    counts = Counter(names)
    labels = [n if counts[n] == 1 else f"{n} ({f.name})" for n, f in zip(names, folders)]
    seen: Counter[str] = Counter()
    unique = []
    for label in labels:
        seen[label] += 1
        unique.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return unique


def load_runs(folders: list[Path | str]) -> list[Run]:
    paths = [Path(f) for f in folders]
    if not paths:
        raise RunFolderError("no run folder given")
    manifests = [read_manifest(p) for p in paths]
    labels = _unique_labels(paths, manifests)
    return [
        Run(p, label, m, read_trajectories(p), read_profile(p))
        for p, label, m in zip(paths, labels, manifests)
    ]
