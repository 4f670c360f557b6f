"""`bench merge`: one run directory from the N shard directories of one run.

Shards are refused unless they are the same run (model, checkpoint hash, protocol, listing
fingerprints and limit agree; only the shard differs), each finished, all N present once.
The merged journal is the shards' entries; `trajectories.parquet` is rebuilt from it in
official order, so the merged folder equals an unsharded run's and `bench summary` /
`bench report` read it as an ordinary run.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.store import JOURNAL, MANIFEST, ResultStore, dumps_strict
from bench.store.manifest import identity_differences, run_status, status_is_complete


class MergeError(ValueError):
    """Shard directories that cannot make one run; the message names the folder and why."""


def _read(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    if not path.is_file():
        raise MergeError(f"{run_dir}: no {MANIFEST}; not a bench run directory")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MergeError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest.get("shard"), dict):
        raise MergeError(f"{run_dir}: not a shard (its run had no --shard)")
    return manifest


def check_shards(shard_dirs: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """The shards sorted by index, or a `MergeError` naming the offending folder."""
    if not shard_dirs:
        raise MergeError("no shard directories given")
    shards = [(Path(d), _read(Path(d))) for d in shard_dirs]
    first_dir, first = shards[0]
    count = first["shard"]["count"]
    by_index: dict[int, Path] = {}
    for run_dir, manifest in shards:
        shard = manifest["shard"]
        if shard["count"] != count:
            raise MergeError(
                f"{run_dir}: shard {shard['index']}/{shard['count']} is of a {shard['count']}-way "
                f"split, {first_dir} of a {count}-way split"
            )
        if shard["index"] in by_index:
            raise MergeError(
                f"shard {shard['index']}/{count} given twice: {by_index[shard['index']]} "
                f"and {run_dir}"
            )
        by_index[shard["index"]] = run_dir
        differences = identity_differences(first, manifest)
        if differences:
            raise MergeError(
                f"{run_dir} is not the same run as {first_dir}: they differ in "
                f"{', '.join(differences)}"
            )
        if not status_is_complete(manifest.get("status")):
            raise MergeError(
                f"{run_dir}: shard {shard['index']}/{count} is {manifest.get('status')!r}, not "
                "complete; finish it (re-run its command) before merging"
            )
    missing = sorted(set(range(count)) - set(by_index))
    if missing:
        names = ", ".join(f"{i}/{count}" for i in missing)
        raise MergeError(f"shard(s) {names} missing; given: {sorted(by_index)}")
    return sorted(shards, key=lambda dm: dm[1]["shard"]["index"])


def _prepare_out(out: Path, shard_dirs: list[Path]) -> None:
    """`out` must be new, empty (but for a `shards/` folder), or an earlier merge."""
    if not out.exists():
        return
    resolved = {d.resolve() for d in shard_dirs}
    if out.resolve() in resolved:
        raise MergeError(f"{out}: the output cannot be one of the shards")
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        try:
            merged = json.loads(manifest_path.read_text()).get("merged_from")
        except (json.JSONDecodeError, UnicodeDecodeError):
            merged = None
        if merged is None:
            raise MergeError(
                f"{out} holds a run that is not a merge; choose another --out or remove it"
            )
    for name in (JOURNAL, MANIFEST, "trajectories.parquet", "masks"):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def merge_shards(
    shard_dirs: list[Path], out: Path, command: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Write the merged run to `out`; returns its manifest."""
    shard_dirs = [Path(d) for d in shard_dirs]
    shards = check_shards(shard_dirs)
    _prepare_out(out, shard_dirs)
    store = ResultStore(out)
    seen: dict[tuple[str, str], Path] = {}
    lines = []
    for run_dir, _ in shards:
        for entry in ResultStore(run_dir).entries():
            key = (entry["dataset"], entry["ref"])
            if key in seen:
                raise MergeError(
                    f"{entry['dataset']}/{entry['ref']} in both {seen[key]} and {run_dir}"
                )
            seen[key] = run_dir
            lines.append(dumps_strict(entry, separators=(",", ":")) + "\n")
        masks = run_dir / "masks"
        if masks.is_dir():
            shutil.copytree(masks, out / "masks", dirs_exist_ok=True)
    tmp = out / (JOURNAL + ".tmp")
    with tmp.open("w") as fh:
        fh.writelines(lines)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out / JOURNAL)

    first = shards[0][1]
    manifest = {k: v for k, v in first.items() if k not in ("shard", "resumed")}
    manifest["command"] = list(command)
    manifest["created"] = min(m.get("created", "") for _, m in shards)
    manifest["merged"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest["merged_from"] = [
        {
            "dir": str(d),
            "shard": m["shard"],
            "status": m.get("status"),
            "instances": m.get("instances"),
            "device": m.get("device"),
        }
        for d, m in shards
    ]
    manifest["status"] = "running"  # until the parquet file below exists
    store.write_manifest(manifest)
    frame = store.finalize()
    errors = store.errors()
    instances = int(frame.groupby(["dataset", "sample_id"]).ngroups) if len(frame) else 0
    manifest["errors"] = errors
    manifest["warnings"] = store.warnings()
    manifest["instances"] = instances
    manifest["skipped"] = len(errors)
    manifest["status"] = run_status(instances, len(errors))
    store.write_manifest(manifest)
    return manifest
