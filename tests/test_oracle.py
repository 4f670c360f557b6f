"""Ground truth is hidden from methods: predictors receive a `SampleView` (image, id, dataset,
image path, initial mask), reading `gt` stops the run with a clear error, and only a predictor
that declares `oracle = True` gets the whole sample; its runs are recorded and reported as
oracle runs and never ranked against methods."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from run_folders import delayed, golden_instances, write_run

from bench.cli import main as bench_main
from bench.clicks import make_click_model
from bench.datasets import dataset_root, get_dataset
from bench.engine.instance import ProtocolSettings
from bench.engine.loop import evaluate_dataset
from bench.reports.build import build_report
from bench.sample import GroundTruthHiddenError, Sample, SampleView, predictor_input
from bench.web.session import ModelSession

PLUGINS = Path(__file__).parent / "plugins"
REVEAL = f"{PLUGINS / 'shifted_reveal.py'}:make_predictor"

PEEKING = """
import sys
sys.path.insert(0, {plugins!r})
from shifted_reveal import ShiftedRevealPredictor


class Peeking(ShiftedRevealPredictor):
    oracle = {oracle}


def make(**options):
    return Peeking(**options)
"""


class Recorder:
    """A method (no `oracle`) that keeps what it is given and predicts nothing."""

    def __init__(self, batched: bool) -> None:
        self.seen: list = []
        if batched:
            self.open_instance = self._open
            self.predict_batch = lambda requests: [np.zeros(h, np.float32) for h, _ in requests]

    def _open(self, sample):
        self.seen.append(sample)
        return sample.image.shape[:2]

    def start(self, sample) -> None:
        self.shape = self._open(sample)

    def predict(self, clicks):
        return np.zeros(self.shape, np.float32)


def demo_refs(n: int = 2):
    spec = get_dataset("demo")
    return list(enumerate(spec.list_samples(dataset_root(spec, None))[:n]))


def test_a_view_has_everything_but_the_ground_truth():
    image, gt, init = np.zeros((4, 5, 3), np.uint8), np.ones((4, 5), np.int8), np.zeros((4, 5))
    sample = Sample("a", image, gt, "DAVIS", Path("a.jpg"), Path("a.png"), init_mask=init)
    view = sample.view()
    assert isinstance(view, SampleView)
    assert (view.id, view.dataset, view.image_path) == ("a", "DAVIS", Path("a.jpg"))
    assert view.image is image and view.init_mask is init
    assert not hasattr(view, "gt") and not hasattr(view, "mask_path")
    with pytest.raises(GroundTruthHiddenError, match=r"sample 'a'.*`sample\.gt`.*oracle = True"):
        view.gt  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'colour'"):
        view.colour  # noqa: B018
    assert Sample("b", image, gt, "GrabCut").view().init_mask is None


@pytest.mark.parametrize("batched", [False, True])
def test_the_engine_hands_methods_a_view_and_oracles_the_sample(batched):
    method = Recorder(batched)
    settings = ProtocolSettings(max_clicks=2)
    entries = []
    evaluate_dataset(
        method, "demo", demo_refs(), settings, make_click_model("official"), entries.append
    )
    assert len(method.seen) == 2 and all(type(s) is SampleView for s in method.seen)
    assert all(not e.errors and len(e.instances) == 1 for e in entries)
    oracle = Recorder(batched)
    oracle.oracle = True
    evaluate_dataset(oracle, "demo", demo_refs(), settings, make_click_model("official"), print)
    assert len(oracle.seen) == 2 and all(type(s) is Sample for s in oracle.seen)
    truthy = Recorder(batched)
    truthy.oracle = 1  # only `oracle = True` itself opens the ground truth
    assert type(predictor_input(Sample("x", np.zeros((1, 1)), np.zeros((1, 1)), "d"), truthy)) is (
        SampleView
    )


def run_cli(tmp_path: Path, model: str, out: str, *extra: str):
    return CliRunner().invoke(
        bench_main,
        ["run", "--model", model, "--datasets", "demo", "--limit", "2", "--max-clicks", "3",
         "--no-progress", "--out", str(tmp_path / out), *extra],
    )  # fmt: skip


@pytest.mark.parametrize("batch", ["1", "2"])
def test_a_method_reading_the_ground_truth_stops_the_run_with_a_clear_error(tmp_path, batch):
    plugin = tmp_path / "peeking.py"
    plugin.write_text(PEEKING.format(plugins=str(PLUGINS), oracle=False))
    result = run_cli(tmp_path, f"{plugin}:make", "run", "--batch-size", batch)
    assert result.exit_code == 1, result.output
    assert "predictors do not receive the ground truth (`sample.gt`)" in result.output
    assert "oracle = True" in result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert "GroundTruthHiddenError" in manifest["stopped_by"]
    assert manifest["model"]["oracle"] is False


def test_an_oracle_gets_the_ground_truth_and_the_manifest_says_so(tmp_path):
    plugin = tmp_path / "peeking.py"
    plugin.write_text(PEEKING.format(plugins=str(PLUGINS), oracle=True))
    result = run_cli(tmp_path, f"{plugin}:make", "oracle")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "oracle" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["model"]["oracle"] is True
    result = run_cli(tmp_path, "grabcut-opencv", "method", "--limit", "1", "--max-clicks", "1")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "method" / "manifest.json").read_text())
    assert manifest["model"]["oracle"] is False


def test_the_demo_hands_methods_a_view(tmp_path):
    import asyncio

    method = Recorder(batched=False)
    session = ModelSession(method, "recorder")
    sample = next(iter(demo_refs(1)))[1].load()[0]
    from bench.sample import Click

    try:
        asyncio.run(session.predict(("demo", 0), sample, [Click(5, 5, True)], has_gt=True))
    finally:
        session.close()
    assert len(method.seen) == 1 and type(method.seen[0]) is SampleView


@pytest.fixture(scope="module")
def golden_runs(tmp_path_factory, golden):
    root = tmp_path_factory.mktemp("oracle")
    instances = golden_instances(golden, "GrabCut")[:6]

    def mark_oracle(folder: Path) -> Path:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["model"]["oracle"] = True
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return folder

    return {
        "method": write_run(root / "method", "GrabCut", instances, model="method"),
        "later": write_run(
            root / "later", "GrabCut", instances, model="later", transform=lambda s: delayed(s, 2)
        ),
        "oracle": mark_oracle(write_run(root / "oracle", "GrabCut", instances, model="upper")),
    }


def test_reports_mark_oracle_runs_and_never_rank_them(golden_runs, tmp_path):
    # The oracle equals the best method; without its mark it would share the bold.
    runs = [golden_runs["later"], golden_runs["oracle"], golden_runs["method"]]
    out = build_report(runs, tmp_path / "r.html", hist_clicks=(1,))
    table = out.tables["noc"]
    labels = [r.label for r in table.rows]
    oracle = next(i for i, lb in enumerate(labels) if "upper" in lb)
    method = next(i for i, lb in enumerate(labels) if lb.startswith("method"))
    assert "[oracle]" in labels[oracle] and "[oracle]" not in labels[method]
    assert not table.bold.iloc[oracle].any() and table.bold.iloc[method].all()
    assert "receives the ground truth" in out.html.read_text()
    # bench compare refuses an oracle beside a method, as it refuses another protocol.
    result = CliRunner().invoke(
        bench_main, ["compare", str(golden_runs["method"]), str(golden_runs["oracle"])]
    )
    assert result.exit_code == 1 and "is an oracle" in result.output
