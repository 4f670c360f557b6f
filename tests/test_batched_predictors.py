"""The batched interface of the built-in predictors (`open_instance` / `predict_batch`).

SimpleClick and RITM: several instances' network inputs share one forward; the official
pipeline outputs (golden/README.md sections 3 and 4) must come out as at batch 1. Classical
baselines: a thread pool, bit-identical to `predict`. A call that fails changes no handle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_common_pipeline import ZOOM_SETTINGS, fake_click_net

from bench.adapters import MODELS, make_predictor, supports_batch
from bench.adapters.classical.grabcut_opencv import GrabCutPredictor
from bench.adapters.classical.random_walker import RandomWalkerPredictor
from bench.adapters.common.click_maps import disk_maps
from bench.adapters.common.cpu_parallel import plan_forwards
from bench.adapters.common.eval_predictor import EvalPredictor
from bench.adapters.common.points import batch_points, net_clicks, points_tensor
from bench.datasets import list_samples
from bench.protocol import PRED_THR, iou, next_click
from bench.sample import Click, Sample

BATCH = 4
REAL_MODELS = {
    "simpleclick_vit_xtiny448": "simpleclick-vit-xt",
    "ritm_hrnet18s": "ritm-hrnet18s",
}
# Batched float32 kernels may round differently from batch 1 (another blocking of the same
# reductions), and the CPU path's concurrent forwards run on one intra-op thread where batch 1
# uses torch's thread count: golden/README.md section 3 measured 2.7e-6 (xTiny) and 3.8e-6
# (HRNet-18s) between 1- and 2-thread predictor maps. On the development CPU (AMD EPYC, torch
# 2.13.0+cpu, 2 threads) one batch-4 forward measured exactly 0 for both networks; the
# tolerance leaves room for the thread-count effect and other kernels at about 3x that gap.
BATCH_PROB_ATOL = 1e-5


@pytest.fixture(scope="module")
def grabcut_samples(data_root: Path) -> list[Sample]:
    return [ref.load()[0] for ref in list_samples("grabcut", data_root)[:8]]


def run_lockstep(predictor, samples, n_clicks, replay=None):
    """`n_clicks` clicks of every sample, all instances in each `predict_batch` call.

    Clicks follow the official rule on each instance's own prediction, or `replay[i]`.
    Yields (click number, [(clicks, prob, handle) per instance]) after each call.
    """
    handles = [predictor.open_instance(s) for s in samples]
    clicks: list[list[Click]] = [[] for _ in samples]
    preds = [np.zeros(s.gt.shape, dtype=bool) for s in samples]
    for k in range(n_clicks):
        for i, sample in enumerate(samples):
            if replay is not None:
                clicks[i] = list(replay[i][: k + 1])
            else:
                taken = [(c.y, c.x) for c in clicks[i]]
                clicks[i].append(next_click(sample.gt, preds[i], taken))
        probs = predictor.predict_batch([(h, list(c)) for h, c in zip(handles, clicks)])
        assert len(probs) == len(samples)
        for i, prob in enumerate(probs):
            assert prob.dtype == np.float32 and prob.shape == samples[i].gt.shape
            preds[i] = prob > PRED_THR
        yield k + 1, [(list(c), p, h) for c, p, h in zip(clicks, probs, handles)]


def first_positive(sample: Sample) -> Click:
    y, x = np.argwhere(sample.gt == 1)[0]
    return Click(int(y), int(x), True)


def run_one(predictor, sample, clicks_to_play):
    """Batch 1 through start/predict, replaying the given clicks: the maps after each."""
    predictor.start(sample)
    return [predictor.predict(list(clicks_to_play[: k + 1])) for k in range(len(clicks_to_play))]


# --- padding and grouping --------------------------------------------------------------------


def test_batch_points_pads_each_instance_like_points_tensor():
    a = net_clicks([Click(1, 2, True), Click(3, 4, False), Click(5, 6, True), Click(7, 8, True)])
    b = net_clicks([Click(9, 10, True)])
    joint = points_tensor([a, b, b])
    parts = batch_points([points_tensor([a]), points_tensor([b, b])])
    assert parts.dtype == torch.int64 and torch.equal(parts, joint)


def test_batch_points_mixes_integer_and_zoomed_clicks_without_changing_disks():
    """RITM's first click (native size) gives int64 points, later clicks float64; an int64
    instance promoted to float64 must draw bit-identical disks."""
    whole = points_tensor([net_clicks([Click(17, 40, True), Click(3, 59, False)])])
    zoomed = points_tensor(
        [[c._replace(row=c.row * 0.75, col=c.col * 1.25) for c in net_clicks([Click(9, 9, True)])]]
    )
    assert whole.dtype == torch.int64 and zoomed.dtype == torch.float64
    mixed = batch_points([whole, zoomed])
    assert mixed.dtype == torch.float64 and mixed.shape == (2, 2, 3)
    together = disk_maps(mixed, 50, 70)
    assert torch.equal(together[:1], disk_maps(whole, 50, 70))
    assert torch.equal(together[1:], disk_maps(zoomed, 50, 70))


@pytest.mark.parametrize("golden_name", sorted(REAL_MODELS))
def test_padding_rows_do_not_change_the_network_output(golden, golden_name):
    """`batch_points` pads an instance to the batch's click count; DistMaps drops the rows."""
    io = np.load(golden / "equivalence" / f"{golden_name}_io.npz")
    checkpoint = golden / "equivalence" / f"{golden_name}_random.pth"
    model = make_predictor(
        MODELS[REAL_MODELS[golden_name]], checkpoint=str(checkpoint), device="cpu"
    ).model
    x = torch.from_numpy(io["input"])
    points = torch.from_numpy(io["points"]).to(torch.float64)
    padded = batch_points([points, points_tensor([net_clicks([Click(0, 0, True)] * 4)])])[:1]
    assert padded.shape == (1, 8, 3)  # 2 positives + 2 pads, 1 negative + 3 pads
    with torch.no_grad():
        plain = model(x, points)["instances"]
        more = model(x, padded)["instances"]
    assert torch.equal(plain, more)
    np.testing.assert_allclose(plain.numpy(), io["instances"], rtol=0, atol=5e-4)


def test_plan_forwards_groups_by_shape_or_runs_instances_side_by_side():
    shapes = [(448, 448)] * 2 + [(300, 400), (448, 448)]
    assert plan_forwards(shapes, 1) == [[0, 1, 3], [2]]
    assert plan_forwards(shapes, 2) == [[0], [1], [2], [3]]


def test_cpu_workers_run_instances_side_by_side_and_restore_torch_threads(grabcut_samples):
    """Same maps whether one forward serves all instances or each instance's forward runs on a
    worker, and the caller's torch thread count survives (workers use one intra-op thread)."""
    calls: list[tuple[int, int]] = []

    def recording(x, points):
        calls.append((int(x.shape[0]), torch.get_num_threads()))
        return fake_click_net(x, points)

    samples = grabcut_samples[:4]
    maps = {}
    for workers in (1, 2):
        calls.clear()
        predictor = EvalPredictor(recording, ZOOM_SETTINGS["simpleclick"], forward_workers=workers)
        threads = torch.get_num_threads()
        maps[workers] = [step for _, step in run_lockstep(predictor, samples, 2)]
        assert torch.get_num_threads() == threads
        if workers == 1:
            assert calls == [(8, threads)] * 2  # one forward of 4 instances x flip per click
        else:
            assert calls == [(2, 1)] * 8  # one forward per instance, 1 thread each
    for one, two in zip(maps[1], maps[2]):
        for (c1, p1, _), (c2, p2, _) in zip(one, two):
            assert c1 == c2 and np.array_equal(p1, p2)


# --- the official pipeline around FakeClickNet (golden/README.md section 4) ---------------------


@pytest.fixture()
def one_torch_thread():
    """Small elementwise maps: on a shared 2-core machine one thread is faster (values equal)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("setting", ["simpleclick", "ritm"])
def test_fake_net_pipeline_batch4_matches_official_and_batch1(golden, data_root, setting):
    """All 12 recorded instances, 4 per call, 20 clicks by the official rule: clicks, ROIs,
    IoUs and maps as recorded, and every map bit-identical to a batch-1 run (FakeClickNet
    computes each batch item on its own, so any difference would be the batching's). Two CPU
    workers: each instance's forward runs on its own (`plan_forwards`)."""
    record = json.loads((golden / "pipeline" / "pipeline_fake_net.json").read_text())
    record = record["settings"][setting]
    saved = np.load(golden / "pipeline" / f"{setting}_eval_probs.npz")
    saved_clicks = [int(k) for k in saved["saved_clicks"]]
    batched = EvalPredictor(fake_click_net, ZOOM_SETTINGS[setting], forward_workers=2)
    single = EvalPredictor(fake_click_net, ZOOM_SETTINGS[setting])
    refs = {d: list_samples(d.lower(), data_root) for d in ("GrabCut", "DAVIS")}
    instances = record["instances"]
    assert len(instances) == 12
    for start in range(0, len(instances), BATCH):
        group = instances[start : start + BATCH]
        assert len({inst["dataset"] for inst in group}) == 1  # one dataset in flight
        samples = [refs[inst["dataset"]][inst["index"]].load()[0] for inst in group]
        n_clicks = len(group[0]["per_click"])
        played = []
        for k, step in run_lockstep(batched, samples, n_clicks):
            for inst, sample, (clicks, prob, handle) in zip(group, samples, step):
                want = inst["per_click"][k - 1]
                where = f"{setting} {inst['dataset']}[{inst['index']}] click {k}"
                click = clicks[-1]
                assert (click.y, click.x, click.positive) == (
                    want["y"],
                    want["x"],
                    want["is_positive"],
                ), where
                zoom = handle.state.zoom
                assert (list(zoom.roi) if zoom.roi else None) == want["roi"], where
                hw = list(zoom.roi_image_hw) if zoom.roi_image_hw else None
                assert hw == want["roi_image_hw"], where
                assert float(iou(sample.gt, prob > PRED_THR)) == pytest.approx(
                    want["iou"], abs=1e-6
                ), where
                assert int((prob > PRED_THR).sum()) == want["prob"]["n_above_thr"], where
                if inst["index"] == 0 and k in saved_clicks:
                    ref = saved[f"{inst['dataset']}_0_probs_at_clicks"][saved_clicks.index(k)]
                    np.testing.assert_allclose(prob, ref, rtol=0, atol=1e-4, err_msg=where)
            played.append([prob for _, prob, _ in step])
        final_clicks = [clicks for clicks, _, _ in step]
        for i, sample in enumerate(samples):
            for k, prob in enumerate(run_one(single, sample, final_clicks[i])):
                assert np.array_equal(prob, played[k][i]), f"{setting} {sample.id} click {k + 1}"


# --- the real networks (random-weight official checkpoints, golden/README.md section 3) ------


@pytest.mark.slow
@pytest.mark.parametrize("golden_name", sorted(REAL_MODELS))
def test_real_network_batch4_reproduces_golden_and_batch1(golden, grabcut_samples, golden_name):
    """The official 5-click predictor run (teacher-forced) shares each forward with three
    other GrabCut instances; it must match the official maps as at batch 1 (README tolerance
    2e-4), and every instance's batched maps must equal its batch-1 maps to BATCH_PROB_ATOL."""
    arrays = dict(np.load(golden / "equivalence" / f"{golden_name}_predictor.npz"))
    summary = json.loads((golden / "equivalence" / "summary.json").read_text())
    per_click = summary["models"][golden_name]["predictor_run"]["per_click"]
    recorded = [Click(r["y"], r["x"], r["is_positive"]) for r in per_click]
    checkpoint = golden / "equivalence" / f"{golden_name}_random.pth"
    predictor = make_predictor(
        MODELS[REAL_MODELS[golden_name]], checkpoint=str(checkpoint), device="cpu"
    )
    assert supports_batch(predictor)
    official = Sample("124080", arrays["image_uint8"], arrays["gt_mask"], "GrabCut")
    others = grabcut_samples[: BATCH - 1]
    n_clicks = len(recorded)

    # Batch 1 first, by the official click rule, to get the other instances' clicks.
    alone = []
    for sample in others:
        predictor.start(sample)
        clicks: list[Click] = []
        pred = np.zeros(sample.gt.shape, dtype=bool)
        maps = []
        for _ in range(n_clicks):
            clicks.append(next_click(sample.gt, pred, [(c.y, c.x) for c in clicks]))
            maps.append(predictor.predict(list(clicks)))
            pred = maps[-1] > PRED_THR
        alone.append((clicks, maps))

    replay = [recorded] + [clicks for clicks, _ in alone]
    forward = predictor.pipeline.forward
    batch_sizes: list[int] = []

    def counting(x, points):
        batch_sizes.append(int(x.shape[0]))
        return forward(x, points)

    predictor.pipeline.forward = counting
    for workers in (1, 2):  # one forward per shape group; instance forwards side by side
        predictor.pipeline.forward_workers = workers
        batch_sizes.clear()
        worst = 0.0
        for k, step in run_lockstep(predictor, [official, *others], n_clicks, replay):
            prob = step[0][1]
            np.testing.assert_allclose(prob, arrays["probs"][k - 1], rtol=0, atol=2e-4)
            got_iou = float(iou(arrays["gt_mask"], prob > 0.49))
            assert abs(got_iou - per_click[k - 1]["iou"]) <= 1e-3
            roi = per_click[k - 1]["zoom_in_roi_rmin_rmax_cmin_cmax"]
            got_roi = step[0][2].state.zoom.roi  # RITM's first click is not zoomed: None
            assert (list(got_roi) if got_roi is not None else None) == roi
            for (_, maps), (_, batched, _) in zip(alone, step[1:]):
                worst = max(worst, float(np.abs(batched - maps[k - 1]).max()))
        assert worst <= BATCH_PROB_ATOL, (workers, worst)
        assert sum(batch_sizes) == 2 * BATCH * n_clicks
        if workers == 1:
            # Forwards really were shared: RITM's ran 8, 6+2, ... (click 1 at the common native
            # size 321 x 481, later clicks grouped by ROI shape); SimpleClick's always 8.
            assert max(batch_sizes) == 2 * BATCH and len(batch_sizes) < BATCH * n_clicks


# --- a failed call changes no handle ---------------------------------------------------------


def test_failed_predict_batch_leaves_every_handle_as_it_was(grabcut_samples):
    predictor = EvalPredictor(fake_click_net, ZOOM_SETTINGS["simpleclick"])
    samples = grabcut_samples[:3]
    handles = [predictor.open_instance(s) for s in samples]
    first = [[first_positive(s)] for s in samples]
    predictor.predict_batch(list(zip(handles, first)))
    before = [h.state for h in handles]
    snapshot = [(h.state.prev_prob.clone(), h.state.zoom) for h in handles]
    second = [c + [Click(0, 0, False)] for c in first]

    def unchanged():
        for handle, old, (prev, zoom) in zip(handles, before, snapshot):
            assert handle.state is old and torch.equal(old.prev_prob, prev)
            assert old.zoom == zoom

    # An empty click list fails one item after the others' inputs were prepared.
    with pytest.raises(ValueError, match="at least one click"):
        predictor.predict_batch(
            [(handles[0], second[0]), (handles[1], []), (handles[2], second[2])]
        )
    unchanged()

    # The network fails after every input was prepared.
    def broken(x, points):
        raise RuntimeError("out of memory")

    predictor.forward = broken
    with pytest.raises(RuntimeError, match="out of memory"):
        predictor.predict_batch(list(zip(handles, second)))
    unchanged()
    predictor.forward = fake_click_net
    with pytest.raises(ValueError, match="more than once"):
        predictor.predict_batch([(handles[0], second[0]), (handles[0], second[0])])
    unchanged()
    # Another dataset's instance opened while these are in flight is refused, not mis-run.
    predictor.open_instance(Sample("d", samples[0].image, samples[0].gt, "DAVIS"))
    with pytest.raises(RuntimeError, match="in flight"):
        predictor.predict_batch([(handles[0], second[0])])
    unchanged()


@pytest.mark.parametrize("carry_previous", [False, True])
def test_grabcut_failed_call_leaves_handles_as_they_were(grabcut_samples, carry_previous):
    predictor = GrabCutPredictor(carry_previous=carry_previous)
    handles = [predictor.open_instance(s) for s in grabcut_samples[:2]]
    clicks = [[first_positive(s)] for s in grabcut_samples[:2]]
    predictor.predict_batch(list(zip(handles, clicks)))
    before = [h.instance for h in handles]
    with pytest.raises(AttributeError):
        predictor.predict_batch([(handles[0], clicks[0]), (object(), clicks[1])])
    assert all(h.instance is old for h, old in zip(handles, before))


# --- classical baselines: a thread pool, bit-identical to predict ----------------------------


CLASSICAL = {
    "grabcut-opencv": lambda: GrabCutPredictor(),
    "grabcut-opencv carry_previous": lambda: GrabCutPredictor(carry_previous=True),
    "random-walker": lambda: RandomWalkerPredictor(),
}


@pytest.mark.parametrize("name", sorted(CLASSICAL))
def test_classical_batches_equal_predict_bit_exactly(grabcut_samples, name):
    """Five GrabCut instances, 4 clicks by the official rule, in calls of 4 then 1, against
    one predictor running them one after another through start/predict."""
    samples = grabcut_samples[:5]
    n_clicks = 4
    clicks: dict[str, list[Click]] = {}
    maps: dict[str, list[np.ndarray]] = {s.id: [] for s in samples}
    predictor = CLASSICAL[name]()
    assert supports_batch(predictor)
    for start in range(0, len(samples), BATCH):
        group = samples[start : start + BATCH]
        for _, step in run_lockstep(predictor, group, n_clicks):
            for sample, (played, prob, _) in zip(group, step):
                clicks[sample.id] = played
                maps[sample.id].append(prob)
    single = CLASSICAL[name]()
    for sample in samples:
        assert len(clicks[sample.id]) == n_clicks and len(maps[sample.id]) == n_clicks
        for k, prob in enumerate(run_one(single, sample, clicks[sample.id])):
            assert np.array_equal(prob, maps[sample.id][k]), f"{name} {sample.id} click {k + 1}"


def test_forward_workers_option_is_validated_and_recorded(golden):
    checkpoint = str(golden / "equivalence" / "ritm_hrnet18s_random.pth")
    spec = MODELS["ritm-hrnet18s"]
    one = make_predictor(spec, checkpoint=checkpoint, device="cpu", forward_workers="1")
    assert one.pipeline.workers() == 1
    assert one.describe()["batched"]["rule"] == "one forward per input shape"
    default = make_predictor(spec, checkpoint=checkpoint, device="cpu")
    assert default.pipeline.workers() == torch.get_num_threads()
    assert "side by side" in default.describe()["batched"]["rule"]
    for bad in ("0", "two", "1.5"):
        with pytest.raises(ValueError, match="forward_workers"):
            make_predictor(spec, checkpoint=checkpoint, device="cpu", forward_workers=bad)
