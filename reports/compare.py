"""What makes two runs not directly comparable, so the report can say so next to the numbers.

Numbers are only comparable when the runs share the protocol (click limit, threshold, click
model, early stop, NoC thresholds) and evaluated the same samples (dataset fingerprint and
`--limit`). The most common protocol among the runs is taken as the report's protocol (among the
runs with the official click model when there are any: the paper's tables are about that user;
a tie goes to the protocol that measures the most, e.g. the one without early stop);
every run that differs from it is flagged with the settings that differ. A run made under
another click model is flagged like any other protocol difference, so it is never ranked
against official-clicker runs in one column; the robustness table compares click models.
An oracle run (its predictor received the ground truth) is flagged too: it is shown, labelled
`[oracle]`, and never ranked.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.reports.runs import Run

OFFICIAL_CLICK_MODEL = "official"

ORACLE_NOTE = "oracle: its predictor receives the ground truth (an upper bound, not a method)"


def click_model_label(protocol: dict[str, Any]) -> str:
    """`official`, or e.g. `jitter:sigma=5 (seed 0)`: the `--click-model` text as recorded
    (`manifest["protocol"]["click_model"]`; absent in runs older than click models, which all
    used the official clicker). The seed is part of a random user's identity, not of the
    official one's."""
    spec = protocol.get("click_model")
    if spec is None:
        return str(protocol.get("click_rule") or OFFICIAL_CLICK_MODEL)
    if isinstance(spec, str):
        text = spec
    else:
        from bench.clicks import ClickModelSpec

        text = str(
            ClickModelSpec(
                str(spec.get("name", OFFICIAL_CLICK_MODEL)),
                tuple(spec.get("args") or ()),
                tuple(sorted((spec.get("options") or {}).items())),
            )
        )
    if text != OFFICIAL_CLICK_MODEL and protocol.get("seed") is not None:
        text += f" (seed {protocol['seed']})"
    return text


def comparable_protocol(protocol: dict[str, Any]) -> dict[str, Any]:
    """The protocol with the click model as one label (old `click_rule`, new `click_model` +
    `seed` alike), so that an old official run and a new official run compare equal."""
    out = {k: v for k, v in protocol.items() if k not in ("click_rule", "click_model", "seed")}
    out["click_model"] = click_model_label(protocol)
    return out


@dataclass(frozen=True)
class Flags:
    protocol: dict[str, Any]  # the report's (majority) protocol, as `comparable_protocol`
    runs: dict[str, list[str]] = field(default_factory=dict)  # label -> problems
    click_models: dict[str, str] = field(default_factory=dict)  # label -> click model note
    datasets: dict[str, list[str]] = field(default_factory=dict)  # official name -> problems

    def run_flagged(self, label: str) -> bool:
        return bool(self.runs.get(label))

    def problems_besides_click_model(self, label: str) -> list[str]:
        """What keeps a run out of the robustness table's comparisons (where click models are
        meant to differ)."""
        note = self.click_models.get(label)
        return [p for p in self.runs.get(label, []) if p != note]

    def dataset_flagged(self, folder: str) -> bool:
        return bool(self.datasets.get(folder))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def for_display(value: Any) -> Any:
    """Floats at 12 significant digits, so the official arange thresholds read 0.85, not
    0.8500000000000001 (comparisons use the exact values)."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: for_display(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [for_display(v) for v in value]
    return value


def _describe(value: Any) -> str:
    return "unset" if value is None else json.dumps(for_display(value), default=str)


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


def status_problem(status: Any) -> str | None:
    """`complete` and `complete with N errors` are finished runs (the errors are listed
    separately); anything else (`running`, `failed`, unset) is not."""
    if isinstance(status, str) and (status == "complete" or status.startswith("complete with")):
        return None
    return f"run status is {status!r}, not 'complete'"


def _preference(protocol: dict[str, Any], count: int) -> tuple:
    """Sort key of a candidate report protocol: the most common first; in a tie the one that
    measures the most (no early stop, then more clicks), then a fixed order of the settings,
    never the order the runs were given in."""
    stop = protocol.get("stop_at_iou")
    return (
        -count,
        stop is not None,
        -(float(stop) if stop is not None else 0.0),
        -int(protocol.get("max_clicks") or 0),
        _canonical(protocol),
    )


def find_flags(runs: list[Run]) -> Flags:
    protocols = {r.label: comparable_protocol(r.protocol) for r in runs}
    official = [r for r in runs if protocols[r.label]["click_model"] == OFFICIAL_CLICK_MODEL]
    pool = official or runs
    counts = Counter(_canonical(protocols[r.label]) for r in pool)
    by_text = {_canonical(protocols[r.label]): protocols[r.label] for r in pool}
    protocol = by_text[min(counts, key=lambda text: _preference(by_text[text], counts[text]))]
    run_notes: dict[str, list[str]] = {}
    click_notes: dict[str, str] = {}
    for run in runs:
        notes = []
        if run.oracle:  # never ranked against methods (nor beside them in a column)
            notes.append(ORACLE_NOTE)
        status = status_problem(run.manifest.get("status"))
        if status:
            notes.append(status)
        mine = protocols[run.label]
        if mine["click_model"] != protocol["click_model"]:
            click_notes[run.label] = (
                f"click model {mine['click_model']} (the report's: {protocol['click_model']}); "
                "see the robustness table"
            )
            notes.append(click_notes[run.label])
        diffs = protocol_differences(
            {k: v for k, v in mine.items() if k != "click_model"},
            {k: v for k, v in protocol.items() if k != "click_model"},
        )
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
    return Flags(
        protocol=protocol, runs=run_notes, click_models=click_notes, datasets=dataset_notes
    )
