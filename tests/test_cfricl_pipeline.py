"""CFR-ICL's cascade-forward refinement (`cf_n`, `acf`) against the official evaluation loop
around the deterministic FakeClickNet (golden/cfricl, golden/mobilesam/README.md part B)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from test_common_pipeline import fake_click_net

from bench.adapters.common.cascade import CascadeConfig, changed_pixels, stops_early
from bench.adapters.common.eval_predictor import EvalPredictor, simpleclick_cvpr_zoom_in
from bench.datasets import list_samples
from bench.protocol import PRED_THR, iou, next_click
from bench.sample import Click


def fake_click_net_noprev(x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """FakeClickNetNoPrev of `pipeline_fake_net_noprev_acf.json`: logits = acc - 1, the
    previous-mask channel ignored. FakeClickNet's logits are (6 (prev - 0.5) + acc) - 1, so a
    previous channel of exactly 0.5 gives acc - 1 bit for bit."""
    blind = torch.cat((x[:, :3], torch.full_like(x[:, 3:], 0.5)), dim=1)
    return fake_click_net(blind, points)


class CountingNet:
    """The fake network, counting its calls (the fixture's `n_net_forwards`)."""

    def __init__(self, net):
        self.net = net
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        with self.lock:
            self.calls += 1
        return self.net(x, points)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Elementwise work on small maps (values are unchanged by the thread count:
    `check_threads_2.json`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fixture(golden):
    return json.loads((golden / "cfricl" / "pipeline_fake_net.json").read_text())


@pytest.fixture(scope="module")
def noprev_fixture(golden):
    return json.loads((golden / "cfricl" / "pipeline_fake_net_noprev_acf.json").read_text())


@pytest.fixture(scope="module")
def saved_maps(golden):
    return np.load(golden / "cfricl" / "cfricl_eval_probs.npz")


@pytest.fixture(scope="module")
def samples(data_root):
    cache: dict[tuple[str, int], object] = {}

    def get(dataset: str, index: int):
        if (dataset, index) not in cache:
            cache[dataset, index] = list_samples(dataset.lower(), data_root)[index].load()[0]
        return cache[dataset, index]

    return get


def cascade_of(record: dict) -> CascadeConfig:
    """Our config from the fixture's recorded official predictor parameters."""
    config = CascadeConfig(cf_n=record["cf_n"], acf=record["acf"])
    for setup in record["setups"].values():
        params = setup["predictor_params"]
        assert params["cascade_step"] == config.cf_n + 1
        assert params["cascade_adaptive"] == config.acf
        assert params["cascade_clicks"] == config.cf_click
        target = tuple(setup["zoom_in_params"]["target_size"]["__tuple__"])
        assert setup["zoom_in_params"]["skip_clicks"] == -1
        assert setup["with_flip"] and setup["transforms"][0] == "ZoomIn"
    assert target == simpleclick_cvpr_zoom_in("DAVIS").target_size
    return config


def check_setting(record, samples, net, picks, maps=None, setting=""):
    """20 clicks of the official loop per instance, every recorded figure compared."""
    counting = CountingNet(net)
    predictor = EvalPredictor(counting, simpleclick_cvpr_zoom_in, cascade=cascade_of(record))
    saved_clicks = [int(k) for k in maps["saved_clicks"]] if maps is not None else []
    checked = 0
    for inst in record["instances"]:
        if picks is not None and (inst["dataset"], inst["index"]) not in picks:
            continue
        sample = samples(inst["dataset"], inst["index"])
        assert f"{sample.id}.jpg" == inst["image"] and list(sample.gt.shape) == inst["hw"]
        predictor.start(sample)
        clicks: list[Click] = []
        pred = np.zeros(sample.gt.shape, dtype=bool)
        for k, want in enumerate(inst["per_click"], start=1):
            where = f"{setting} {inst['dataset']}[{inst['index']}] click {k}"
            clicks.append(next_click(sample.gt, pred, [(c.y, c.x) for c in clicks]))
            before = counting.calls
            prob = predictor.predict(clicks)
            pred = prob > PRED_THR
            click = clicks[-1]
            assert (click.y, click.x, click.positive) == (
                want["y"],
                want["x"],
                want["is_positive"],
            ), where
            zoom = predictor.state.zoom
            assert list(zoom.roi) == want["roi"], where
            assert list(zoom.roi_image_hw) == want["roi_image_hw"], where
            # Counters: official inner (cascade) calls, outer + inner calls, net forwards.
            trace = predictor.trace
            assert counting.calls - before == trace.forwards == want["n_net_forwards"], where
            cascading = want["n_cascade_forwards"] > 0
            assert trace.forwards == (want["n_cascade_forwards"] if cascading else 1), where
            assert want["n_get_prediction_calls"] == trace.forwards + cascading, where
            assert list(trace.changed) == want["cascade_changed_pixels_vs_previous_step"], where
            summary = want["prob"]
            assert int(pred.sum()) == summary["n_above_thr"], where
            assert iou(sample.gt, pred) == pytest.approx(want["iou"], abs=1e-6), where
            assert float(prob.sum(dtype=np.float64)) == pytest.approx(summary["sum"], abs=1e-2)
            assert float(prob.max()) == pytest.approx(summary["max"], abs=1e-6), where
            assert float(prob.mean(dtype=np.float64)) == pytest.approx(summary["mean"], abs=1e-6)
            if maps is not None and inst["index"] == 0 and k in saved_clicks:
                ref = maps[f"{setting}_{inst['dataset']}_0_probs_at_clicks"]
                np.testing.assert_allclose(
                    prob, ref[saved_clicks.index(k)], rtol=0, atol=1e-4, err_msg=where
                )
        checked += 1
    return checked


FIRST = {("GrabCut", 0), ("DAVIS", 0)}


@pytest.mark.parametrize("setting", ["cf0", "cf1", "cf1_acf", "cf3", "cf3_acf"])
def test_cascade_matches_official_on_instances_with_stored_maps(
    fixture, samples, saved_maps, setting
):
    """GrabCut[0] and DAVIS[0] of every setting: clicks, ROIs, counters and the full maps."""
    record = fixture["settings"][setting]
    assert check_setting(record, samples, fake_click_net, FIRST, saved_maps, setting) == 2


@pytest.mark.parametrize("setting", ["cf1_acf", "cf3"])
def test_cascade_matches_official_on_every_recorded_instance(fixture, samples, setting):
    """The other 10 instances (GrabCut 1..7, DAVIS 1..3) of one cascade length each; cf1 and
    cf3_acf run the same code path with the other length (and equal cf1_acf / cf3 here)."""
    record = fixture["settings"][setting]
    picks = {(i["dataset"], i["index"]) for i in record["instances"]} - FIRST
    assert len(picks) == 10
    assert check_setting(record, samples, fake_click_net, picks, setting=setting) == 10


@pytest.mark.parametrize(("setting", "picks", "count"), [("cf3_acf", None, 12), ("cf3", FIRST, 2)])
def test_adaptive_stop_matches_official_with_prev_free_net(
    noprev_fixture, samples, setting, picks, count
):
    """Where the cascade converges, `acf` returns after 3 of 4 forwards (step 2 changes 0
    pixels) on all 12 instances; without `acf` all 4 run, with the same result."""
    record = noprev_fixture["settings"][setting]
    forwards = {i["per_click"][0]["n_cascade_forwards"] for i in record["instances"]}
    assert forwards == ({3} if record["acf"] else {4})
    assert check_setting(record, samples, fake_click_net_noprev, picks, setting=setting) == count


def test_two_thread_rerun_equals_the_fixture(golden, fixture, samples):
    """`check_threads_2.json`: the official loop gave identical results with 2 torch threads;
    so does ours on the instances it reran (cf3 and cf1_acf, GrabCut 0-1, DAVIS 0)."""
    check = json.loads((golden / "cfricl" / "check_threads_2.json").read_text())
    assert check["threads"] == 2
    torch.set_num_threads(2)
    try:
        for setting, result in check["settings"].items():
            assert result["identical_clicks_rois_counters_n_above_thr"]
            assert result["max_abs_iou_diff"] == 0.0 == result["max_abs_prob_summary_diff"]
            picks = {("GrabCut", 0), ("GrabCut", 1), ("DAVIS", 0)}
            record = fixture["settings"][setting]
            assert check_setting(record, samples, fake_click_net, picks) == result["instances"]
    finally:
        torch.set_num_threads(1)


def test_cf0_is_simpleclick_bit_for_bit(samples):
    """cf_n = 0 (and `acf` without a cascade) makes no extra forward and the same maps."""
    sample = samples("GrabCut", 2)
    maps = {}
    for cascade in (None, CascadeConfig(0, acf=True), CascadeConfig(0, cf_click=5)):
        predictor = EvalPredictor(fake_click_net, simpleclick_cvpr_zoom_in, cascade=cascade)
        predictor.start(sample)
        clicks = [Click(150, 200, True), Click(30, 40, False), Click(200, 100, True)]
        maps[cascade] = [predictor.predict(clicks[: k + 1]) for k in range(3)]
        assert predictor.trace.forwards == 1
    reference = maps.pop(None)
    for got in maps.values():
        for a, b in zip(got, reference):
            assert np.array_equal(a, b)


def test_cascade_rule_pieces():
    config = CascadeConfig(cf_n=3, acf=True, cf_click=2)
    assert [config.steps(n) for n in (1, 2, 3)] == [4, 4, 1]
    assert CascadeConfig().steps(1) == 1 and not CascadeConfig().enabled
    assert stops_early(config, 20) and not stops_early(config, 21)
    assert not stops_early(CascadeConfig(cf_n=3), 0)
    a = np.array([0.49, 0.50, 0.9, 0.1], dtype=np.float32)
    b = np.array([0.50, 0.49, 0.9, 0.6], dtype=np.float32)
    assert changed_pixels(a, b) == 3  # > 0.49 on both sides, not >=
    for bad in ({"cf_n": -1}, {"cf_n": 1.5}, {"cf_click": -2}):
        with pytest.raises(ValueError):
            CascadeConfig(**bad)


@pytest.mark.parametrize("fixture_name", ["fixture", "noprev_fixture"])
@pytest.mark.parametrize("workers", [1, 2])
def test_batched_cascade_matches_official_with_instances_at_different_clicks(
    request, samples, fixture_name, workers
):
    """`predict_batch` with staggered instances: in each call one instance makes its first
    click (a cascade of cf_n + 1 rounds, or fewer with `acf`) while the others make later
    clicks (one round). Clicks, ROIs and counters as recorded, maps bit-identical to batch 1
    (FakeClickNet computes each batch item on its own). Workers 1: one forward per round for
    the instances still cascading; 2: each instance's forward on its own."""
    record = request.getfixturevalue(fixture_name)["settings"]["cf3_acf"]
    net = fake_click_net if fixture_name == "fixture" else fake_click_net_noprev
    cascade = cascade_of(record)
    batched = EvalPredictor(
        CountingNet(net), simpleclick_cvpr_zoom_in, cascade=cascade, forward_workers=workers
    )
    single = EvalPredictor(net, simpleclick_cvpr_zoom_in, cascade=cascade)
    group = [i for i in record["instances"] if i["dataset"] == "GrabCut"][:3]
    group_samples = [samples("GrabCut", inst["index"]) for inst in group]
    n_clicks = 4
    handles: list = [None] * len(group)
    clicks: list[list[Click]] = [[] for _ in group]
    preds = [np.zeros(s.gt.shape, dtype=bool) for s in group_samples]
    played: list[list[np.ndarray]] = [[] for _ in group]
    for round_ in range(n_clicks + len(group) - 1):
        requests, members = [], []
        for i, sample in enumerate(group_samples):
            if round_ < i or len(clicks[i]) == n_clicks:
                continue  # instance i opens at round i
            if handles[i] is None:
                handles[i] = batched.open_instance(sample)
            taken = [(c.y, c.x) for c in clicks[i]]
            clicks[i].append(next_click(sample.gt, preds[i], taken))
            requests.append((handles[i], list(clicks[i])))
            members.append(i)
        probs = batched.predict_batch(requests)
        assert len(probs) == len(members)
        for i, prob in zip(members, probs):
            inst, k = group[i], len(clicks[i])
            want = inst["per_click"][k - 1]
            where = f"{fixture_name} GrabCut[{inst['index']}] click {k}"
            click = clicks[i][-1]
            assert (click.y, click.x, click.positive) == (
                want["y"],
                want["x"],
                want["is_positive"],
            ), where
            assert list(handles[i].state.zoom.roi) == want["roi"], where
            assert handles[i].trace.forwards == want["n_net_forwards"], where
            assert list(handles[i].trace.changed) == want["cascade_changed_pixels_vs_previous_step"]
            assert int((prob > PRED_THR).sum()) == want["prob"]["n_above_thr"], where
            preds[i] = prob > PRED_THR
            played[i].append(prob)
    for i, sample in enumerate(group_samples):
        single.start(sample)
        for k, prob in enumerate(played[i]):
            assert np.array_equal(single.predict(clicks[i][: k + 1]), prob)


def test_failed_batched_cascade_leaves_handles_as_they_were(samples):
    """A forward that fails in a later cascade round changes no handle."""
    calls = {"n": 0}

    def flaky(x, points):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("device lost")
        return fake_click_net(x, points)

    predictor = EvalPredictor(
        flaky, simpleclick_cvpr_zoom_in, cascade=CascadeConfig(cf_n=3), forward_workers=1
    )
    handle = predictor.open_instance(samples("GrabCut", 0))
    before = (handle.state, handle.trace)
    with pytest.raises(RuntimeError, match="device lost"):
        predictor.predict_batch([(handle, [Click(210, 230, True)])])
    assert (handle.state, handle.trace) == before
