"""What makes two runs not directly comparable, so the report can say so next to the numbers.

Numbers are only comparable when the runs share the protocol (click limit, threshold, click
rule, early stop, NoC thresholds) and evaluated the same samples (dataset fingerprint and
`--limit`). The most common protocol among the runs is taken as the report's protocol; every
run that differs from it is flagged with the settings that differ.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.reports.runs import Run


@dataclass(frozen=True)
class Flags:
    protocol: dict[str, Any]  # the report's (majority) protocol
    runs: dict[str, list[str]] = field(default_factory=dict)  # label -> problems
    datasets: dict[str, list[str]] = field(default_factory=dict)  # official name -> problems

    def run_flagged(self, label: str) -> bool:
        return bool(self.runs.get(label))

    def dataset_flagged(self, folder: str) -> bool:
        return bool(self.datasets.get(folder))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _describe(value: Any) -> str:
    return "unset" if value is None else json.dumps(value, default=str)


def protocol_differences(protocol: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    keys = sorted(set(protocol) | set(reference))
    return [
        f"{key} = {_describe(protocol.get(key))} (others: {_describe(reference.get(key))})"
        for key in keys
        if _canonical(protocol.get(key)) != _canonical(reference.get(key))
    ]


def _sample_set(run: Run, cli_name: str) -> tuple[str, str, int]:
    info = run.dataset_info(cli_name)
    instances = run.trajectories.loc[run.trajectories["dataset"] == cli_name, "sample_id"].nunique()
    return (str(info.get("fingerprint")), _describe(info.get("limit")), int(instances))


def find_flags(runs: list[Run]) -> Flags:
    counts = Counter(_canonical(r.protocol) for r in runs)
    majority = counts.most_common(1)[0][0]
    protocol = next(r.protocol for r in runs if _canonical(r.protocol) == majority)
    run_notes: dict[str, list[str]] = {}
    for run in runs:
        notes = []
        if run.manifest.get("status") != "complete":
            notes.append(f"run status is {run.manifest.get('status')!r}, not 'complete'")
        diffs = protocol_differences(run.protocol, protocol)
        if diffs:
            notes.append("protocol differs: " + "; ".join(diffs))
        if notes:
            run_notes[run.label] = notes

    dataset_notes: dict[str, list[str]] = {}
    by_folder: dict[str, dict[str, tuple[str, str, int]]] = {}
    for run in runs:
        for cli_name in run.datasets():
            by_folder.setdefault(run.dataset_label(cli_name), {})[run.label] = _sample_set(
                run, cli_name
            )
    for folder, sets in by_folder.items():
        if len(set(sets.values())) > 1:
            detail = ", ".join(
                f"{label}: {n} instances, limit {limit}, fingerprint {fp[:12]}"
                for label, (fp, limit, n) in sets.items()
            )
            dataset_notes[folder] = [f"runs evaluated different samples ({detail})"]
    return Flags(protocol=protocol, runs=run_notes, datasets=dataset_notes)
