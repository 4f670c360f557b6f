"""Reading run folders written by `bench run`: the manifest, the trajectories and, when
present, `profile.csv` and saved masks. Nothing here touches a model, so a report can be
rebuilt from the folders alone (ARCHITECTURE.md, "The one data flow")."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
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


@dataclass(frozen=True)
class Inputs:
    """What a list of command-line paths holds: run folders, folders holding only a
    `profile.csv` (`bench profile --out DIR`), and why anything else was left out."""

    runs: list[Path]
    profiles: list[Path]
    skipped: list[str]


def _is_shard(manifest_path: Path) -> bool:
    try:
        return bool(json.loads(manifest_path.read_text()).get("shard"))
    except (OSError, ValueError, AttributeError):
        return False


def collect_inputs(paths: list[Path | str]) -> Inputs:
    """Run folders given directly, or found one level inside a folder of runs (`runs/`).

    A given path that is a run folder is always read (its errors are the user's to see). A
    folder that is not one is looked into once: its run folders are read, `profile.csv`-only
    folders give profiles, and everything else there (a crashed run's folder, a file) is left
    out with a reason, as are shards (`bench merge` them first) found that way. Run folders
    are never searched (a merged run's `shards/` stays out)."""
    runs: list[Path] = []
    profiles: list[Path] = []
    skipped: list[str] = []
    from bench.robustness import is_robustness_dir

    for given in (Path(p) for p in paths):
        if (given / "manifest.json").is_file() or is_robustness_dir(given):
            runs.append(given)  # a robustness folder is read as one (`bench.reports.rclicks`)
            continue
        if (given / "profile.csv").is_file():
            profiles.append(given)
            continue
        if not given.is_dir():
            skipped.append(f"{given}: not a run folder; skipped")
            continue
        found = 0
        for child in sorted(given.iterdir()):
            if child.name.startswith("."):
                continue
            manifest = child / "manifest.json"
            if is_robustness_dir(child):
                runs.append(child)
                found += 1
            elif manifest.is_file():
                if _is_shard(manifest):
                    skipped.append(f"{child}: one shard of a run (merge the shards); skipped")
                    continue
                runs.append(child)
                found += 1
            elif (child / "profile.csv").is_file():
                profiles.append(child)
                found += 1
            else:
                skipped.append(f"{child}: not a run folder (no manifest.json); skipped")
        if not found:
            skipped.append(f"{given}: no manifest.json, and no run folder inside; skipped")
    return Inputs(runs, profiles, skipped)


def _model_profile(run_model: str, tables: list[pd.DataFrame]) -> pd.DataFrame | None:
    """The rows of the profile tables that measured `run_model` (the `model` column of
    `bench profile`); a run folder's own rows for another model are not its profile."""
    rows = [
        t if "model" not in t.columns else t[t["model"].astype(str) == run_model] for t in tables
    ]
    frame = pd.concat(rows, ignore_index=True) if rows else None
    return frame if frame is not None and not frame.empty else None


def load_runs(folders: list[Path | str], profiles: Sequence[Path | str] = ()) -> list[Run]:
    """The runs, each with the `profile.csv` rows of its own model, from its folder and
    from the profile folders given (`unmatched_profiles` says which rows fit no run)."""
    paths = [Path(f) for f in folders]
    if not paths:
        raise RunFolderError("no run folder given")
    manifests = [read_manifest(p) for p in paths]
    labels = _unique_labels(paths, manifests)
    shared = [t for t in (read_profile(Path(p)) for p in profiles) if t is not None]
    runs = []
    for p, label, m in zip(paths, labels, manifests):
        own = read_profile(p)
        tables = ([own] if own is not None else []) + shared
        name = str((m.get("model") or {}).get("name") or p.name)
        runs.append(Run(p, label, m, read_trajectories(p), _model_profile(name, tables)))
    return runs


def unmatched_profiles(runs: list[Run], profiles: Sequence[Path | str]) -> list[str]:
    """A note per profiled model that no run has (a profile put in another model's folder
    included), so a report never shows one model's compute beside another's accuracy."""
    names = {run.model_name for run in runs}
    notes = []
    sources = [(run.path, read_profile(run.path)) for run in runs]
    sources += [(Path(p), read_profile(Path(p))) for p in profiles]
    for folder, table in sources:
        if table is None or "model" not in table.columns:
            continue
        for model in dict.fromkeys(table["model"].astype(str)):
            if model not in names:
                notes.append(
                    f"{folder / 'profile.csv'}: profile of {model}, which no run here evaluated; "
                    "not shown"
                )
    return notes
