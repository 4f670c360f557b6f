"""`bench profile` and Table 5 for CFR-ICL: SimpleClick's networks whose first click runs the
cascade (cf_n + 1 forwards, fewer with acf)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from bench import profile
from bench.adapters import MODELS
from bench.adapters.common.cascade import CascadeConfig
from bench.datasets import list_samples
from bench.reports.runs import Run
from bench.reports.tables import compute_table


@pytest.mark.parametrize("name", ["cfr-icl-vit-b", "cfr-icl-vit-l", "cfr-icl-vit-h"])
def test_targets_are_simpleclick_networks_with_cfricl_defaults(name):
    target = profile.resolve_target(name)
    plain = profile.resolve_target(name.replace("cfr-icl", "simpleclick"))
    assert (target.family, target.variant, target.size) == (
        plain.family,
        plain.variant,
        plain.size,
    )
    assert target.cascade == CascadeConfig(cf_n=4, acf=True, cf_click=1)
    assert plain.cascade is None
    assert MODELS[name].extra["cascade"] == dataclasses.asdict(target.cascade)


def test_profile_row_counts_the_cascade_forwards(data_root, tmp_path):
    """The click loop runs the evaluation predictor with the target's cascade: without acf,
    click 1 makes cf_n + 1 forwards and click 2 one, so 2 forwards per click on average with
    cf_n = 2 over 2 clicks (xTiny at 224 keeps it cheap; counts do not depend on weights)."""
    target = dataclasses.replace(
        profile.resolve_target("simpleclick-vit-xt"), cascade=CascadeConfig(cf_n=2)
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        row = profile.profile_one(
            target,
            224,
            samples=lambda: [list_samples("grabcut", data_root)[0].load()[0]],
            dataset="GrabCut (first 1 instance)",
            max_clicks=2,
            warmup_clicks=0,
        )
    finally:
        torch.set_num_threads(threads)
    assert row.cascade == "cf_n=2, acf=false, cf_click=1"
    assert row.forwards_per_click == 2.0 and row.spc_timed_clicks == 2
    frame = pd.read_csv(profile.write_csv([row], tmp_path / "profile.csv"))
    run = Run(
        tmp_path, "CFR xTiny", {"model": {"name": "simpleclick-vit-xt"}}, pd.DataFrame(), frame
    )
    notes = compute_table([run]).notes
    note = next(n for n in notes if n.startswith("CFR-ICL cascade-forward refinement"))
    assert "cf_n + 1 forwards" in note and "2.00 forwards per timed click" in note
    plain = dataclasses.replace(row, cascade="", forwards_per_click=1.0)
    frame = pd.read_csv(profile.write_csv([plain], tmp_path / "plain.csv"))
    run = Run(tmp_path, "xTiny", {"model": {"name": "simpleclick-vit-xt"}}, pd.DataFrame(), frame)
    assert not any(n.startswith("CFR-ICL") for n in compute_table([run]).notes)
