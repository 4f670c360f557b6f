"""FocalClick (ClickSEG) against the official code's golden outputs (golden/clickseg/README.md).

Tolerances are the README's (section 3): float32 logits and refiner outputs 5e-4, the decoder
feature 2e-4, click disks exact, predictor probability maps 2e-4 and IoU 1e-3. They cover the
observed float noise of the official run itself (1 vs 2 threads: 9.3e-6 on the logits,
float64 vs float32: 1.6e-5) with margin. The pipeline fixture around the fake network is
reproduced exactly (same clicks, ROIs, focus boxes, IoUs) since every step is deterministic.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from clickseg_fakes import FakeFocalNet

from bench.adapters import MODELS
from bench.adapters.checkpoint import CheckpointError
from bench.adapters.clickseg.focal_predictor import FocalPredictor
from bench.adapters.clickseg.focus import focus_box
from bench.adapters.clickseg.predictor import load_clickseg, make_focalclick_segformer_b0_s2
from bench.adapters.clickseg.roi_align import roi_align
from bench.adapters.clickseg.segformer import SegFormerModel
from bench.datasets import list_samples
from bench.protocol import PRED_THR, iou, next_click
from bench.sample import Click, Sample

B0 = "focalclick_segformer_b0_s2"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small maps on a shared 2-core machine: one intra-op thread (values within tolerance)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def equivalence(golden):
    return golden / "clickseg" / "equivalence"


@pytest.fixture(scope="module")
def b0_io(equivalence):
    return dict(np.load(equivalence / f"{B0}_io.npz"))


@pytest.fixture(scope="module")
def b0_model(equivalence):
    model, record = load_clickseg("focalclick-segformer-b0-s2", equivalence / f"{B0}_random.pth")
    assert record["strict_load"] is True and record["official_strict"] is False
    assert record["checkpoint_weights_only"] is True
    return model


@pytest.fixture(scope="module")
def b0_out(b0_model, b0_io):
    with torch.no_grad():
        return b0_model(torch.from_numpy(b0_io["input"]), torch.from_numpy(b0_io["points"]))


# --- manifests --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["b0", "b3"])
def test_segformer_state_dict_matches_manifest(golden, variant):
    manifest = json.loads(
        (golden / "clickseg" / "manifests" / f"focalclick_segformer_{variant}_s2.json").read_text()
    )
    model = SegFormerModel(variant)
    got = [
        (n, list(t.shape), str(t.dtype).removeprefix("torch."))
        for n, t in model.state_dict().items()
    ]
    want = [(e["name"], e["shape"], e["dtype"]) for e in manifest["state_dict"]]
    assert got == want
    counts = manifest["param_counts"]
    assert sum(p.numel() for p in model.parameters()) == counts["total_parameters"]
    for module, record in counts["by_top_level_module"].items():
        sub = getattr(model, module, None)
        found = sum(p.numel() for p in sub.parameters()) if sub is not None else 0
        assert found == record["params"], module
    assert manifest["config"]["params"]["model_version"]["value"] == variant


# --- forward pass -----------------------------------------------------------------------------


def test_b0_forward_matches_official(b0_out, b0_io):
    np.testing.assert_array_equal(b0_out["click_map"].numpy(), b0_io["click_map"])
    np.testing.assert_allclose(b0_out["feature"].numpy(), b0_io["feature"], rtol=0, atol=2e-4)
    np.testing.assert_allclose(b0_out["instances"].numpy(), b0_io["instances"], rtol=0, atol=5e-4)
    assert b0_out["instances_aux"] is b0_out["instances"]


def test_b0_refiner_matches_official(b0_model, b0_out, b0_io):
    with torch.no_grad():
        out = b0_model.refine(
            torch.from_numpy(b0_io["refine_image"]),
            torch.from_numpy(b0_io["refine_points"]),
            b0_out["feature"],
            b0_out["instances"],
            torch.from_numpy(b0_io["refine_roi"]),
        )
    for key, ref in [
        ("instances_refined", "refine_instances_refined"),
        ("trimap", "refine_trimap"),
        ("instances_coarse", "refine_instances_coarse"),
    ]:
        np.testing.assert_allclose(out[key].numpy(), b0_io[ref], rtol=0, atol=5e-4, err_msg=key)


def test_roi_align_reproduces_the_official_crops_bit_for_bit(b0_io):
    """Fed the official feature / logits, our RoIAlign gives the stored tap tensors exactly."""
    roi = torch.from_numpy(b0_io["refine_roi"])
    feature = roi_align(torch.from_numpy(b0_io["feature"]), roi, (64, 64), 1 / 4, aligned=True)
    np.testing.assert_array_equal(feature.numpy(), b0_io["tap_refine_cropped_feature"])
    logits = roi_align(torch.from_numpy(b0_io["instances"]), roi, (256, 256), 1, aligned=True)
    np.testing.assert_array_equal(logits.numpy(), b0_io["tap_refine_cropped_logits"])


def test_roi_align_averages_an_adaptive_grid_of_samples():
    """On a linear ramp bilinear sampling is exact, so each bin is its centre's value; a box of
    40 px pooled to 4 bins uses a 10 x 10 grid, and samples outside the map count as zero."""
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(48.0), indexing="ij")
    ramp = (2 * ys + xs + 1)[None, None]
    box = torch.tensor([[0, 4.0, 2.0, 44.0, 22.0]])
    out = roi_align(ramp, box, (4, 4), 1.0, aligned=True)[0, 0]
    cy = 2.0 - 0.5 + (torch.arange(4) + 0.5) * 5.0
    cx = 4.0 - 0.5 + (torch.arange(4) + 0.5) * 10.0
    torch.testing.assert_close(out, 2 * cy[:, None] + cx[None, :] + 1, atol=1e-4, rtol=0)
    # Unaligned, with a box mostly left of the map: the outside samples (x < -1) add zero.
    outside = roi_align(torch.ones(1, 1, 8, 8), torch.tensor([[0, -20.0, 0.0, 4.0, 8.0]]), 1)
    assert 0 < float(outside) < 1


# --- the focus crop ---------------------------------------------------------------------------


def test_focus_box_first_click_is_the_expanded_coarse_box_truncated():
    coarse = np.full((100, 120), -5.0, dtype=np.float32)
    coarse[20:41, 30:61] = 5.0  # rows 20..40, cols 30..60
    box = focus_box(coarse, np.zeros_like(coarse), (0, 100, 0, 120), 30, 40)
    # centre 30, height 1.4 * 21 = 29.4 -> int(15.3) = 15, int(44.7) = 44; cols int(23.3), int(66.7)
    assert box == (15, 44, 23, 66)


def test_focus_box_takes_a_square_around_the_click_for_a_small_change():
    coarse = np.full((100, 120), -5.0, dtype=np.float32)
    coarse[20:61, 30:91] = 5.0
    prev = np.where(coarse > 0, 0.9, 0.1).astype(np.float32)
    coarse[50:54, 50:54] = -5.0  # a 4 x 4 hole (>= 10 pixels) at the click
    box = focus_box(coarse, prev, (0, 100, 10, 110), 51, 51)
    # l = max(40, 60) = 60: [51 - 12, 51 + 12] expanded by 1.4 about 51: 51 +- 17.5
    assert box == (33, 68, 33, 68)


# --- the evaluation-time predictor ------------------------------------------------------------


def test_b0_predictor_matches_official_five_clicks(b0_model, equivalence, golden):
    ref = np.load(equivalence / f"{B0}_predictor.npz")
    summary = json.loads((equivalence / "summary.json").read_text())
    run = summary["models"][B0]["predictor_run"]
    predictor = FocalPredictor(b0_model, infer_size=run["setup"]["infer_size"])
    sample = Sample("124080", ref["image_uint8"], ref["gt_mask"], "GrabCut")
    # The predictor sees no ground truth: give it a sample without one.
    predictor.start(Sample("124080", ref["image_uint8"], np.zeros((1, 1), np.int8), "GrabCut"))
    clicks: list[Click] = []
    for k, (y, x, positive) in enumerate(ref["clicks_y_x_positive"]):
        clicks.append(Click(int(y), int(x), bool(positive)))
        prob = predictor.predict(clicks)
        want = run["per_click"][k]
        trace = predictor.state.trace
        assert (list(trace.roi) if trace.roi else None) == want["roi"]
        assert list(trace.global_roi) == want["global_roi"]
        assert list(trace.focus_roi) == want["focus_roi"]
        np.testing.assert_allclose(prob, ref["probs"][k], rtol=0, atol=2e-4)
        assert float(iou(sample.gt, prob > PRED_THR)) == pytest.approx(want["iou"], abs=1e-3)


@pytest.fixture(scope="module")
def pipeline_golden(golden):
    return json.loads((golden / "clickseg" / "pipeline" / "pipeline_fake_net.json").read_text())


def check_focal_pipeline(pipeline_golden, golden, data_root, picks):
    record = pipeline_golden["settings"]["focalclick"]
    saved = np.load(golden / "clickseg" / "pipeline" / "focalclick_eval_probs.npz")
    saved_clicks = [int(k) for k in saved["saved_clicks"]]
    setup = record["setups"]["GrabCut"]
    predictor = FocalPredictor(
        FakeFocalNet(), infer_size=setup["infer_size"], focus_crop_r=setup["focus_crop_r"]
    )
    refs = {}
    for dataset, index in picks:
        inst = next(
            i for i in record["instances"] if i["dataset"] == dataset and i["index"] == index
        )
        if dataset not in refs:
            refs[dataset] = list_samples(dataset.lower(), data_root)
        sample = refs[dataset][index].load()[0]
        assert f"{sample.id}.jpg" == inst["image"] and list(sample.gt.shape) == inst["hw"]
        predictor.start(sample)
        clicks: list[Click] = []
        pred = np.zeros(sample.gt.shape, dtype=bool)
        for k, want in enumerate(inst["per_click"], start=1):
            where = f"focalclick {dataset}[{index}] click {k}"
            clicks.append(next_click(sample.gt, pred, [(c.y, c.x) for c in clicks]))
            prob = predictor.predict(clicks)
            assert prob.dtype == np.float32 and prob.shape == sample.gt.shape
            pred = prob > PRED_THR
            click, trace = clicks[-1], predictor.state.trace
            assert (click.y, click.x, click.positive) == (
                want["y"],
                want["x"],
                want["is_positive"],
            ), where
            assert (list(trace.roi) if trace.roi else None) == want["roi"], where
            hw = list(trace.roi_image_hw) if trace.roi_image_hw else None
            assert hw == want["roi_image_hw"], where
            assert list(trace.global_roi) == want["global_roi"], where
            assert list(trace.focus_roi) == want["focus_roi"], where
            np.testing.assert_allclose(
                trace.focus_roi_in_global_roi, want["focus_roi_in_global_roi"], rtol=0, atol=1e-9
            )
            assert float(iou(sample.gt, pred)) == pytest.approx(want["iou"], abs=1e-6), where
            summary = want["prob"]
            assert int(pred.sum()) == summary["n_above_thr"], where
            assert float(prob.sum(dtype=np.float64)) == pytest.approx(summary["sum"], abs=1e-2)
            assert float(prob.max()) == pytest.approx(summary["max"], abs=1e-6), where
            if index == 0 and k in saved_clicks:
                ref = saved[f"{dataset}_0_probs_at_clicks"][saved_clicks.index(k)]
                np.testing.assert_allclose(prob, ref, rtol=0, atol=1e-4, err_msg=where)


def test_fake_net_pipeline_matches_official_on_first_instances(pipeline_golden, golden, data_root):
    """GrabCut[0] and DAVIS[0] (full maps stored at clicks 1, 2, 3, 5, 10, 11, 20: the switch
    to the previous prediction as coarse map after click 10 is covered)."""
    check_focal_pipeline(pipeline_golden, golden, data_root, [("GrabCut", 0), ("DAVIS", 0)])


@pytest.mark.slow
def test_fake_net_pipeline_matches_official_on_other_recorded_instances(
    pipeline_golden, golden, data_root
):
    record = pipeline_golden["settings"]["focalclick"]
    picks = [(i["dataset"], i["index"]) for i in record["instances"] if i["index"] != 0]
    assert len(picks) == 10  # GrabCut 1..7, DAVIS 1..3
    check_focal_pipeline(pipeline_golden, golden, data_root, picks)


# --- loading and the registry -----------------------------------------------------------------


def test_checkpoint_of_another_variant_is_refused(equivalence):
    with pytest.raises(CheckpointError, match="SegFormer B0.*focalclick-segformer-b0-s2"):
        load_clickseg("focalclick-segformer-b3-s2", equivalence / f"{B0}_random.pth")


def test_bare_state_dict_of_another_variant_names_missing_and_unexpected_keys(
    equivalence, tmp_path
):
    state = torch.load(equivalence / f"{B0}_random.pth", weights_only=True)["state_dict"]
    path = tmp_path / "bare.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_clickseg("focalclick-segformer-b3-s2", path)
    message = str(info.value)
    assert "missing key(s): feature_extractor.backbone.block1.2" in message
    assert "shape mismatch" in message


def test_registry_factory_builds_the_official_predictor(equivalence):
    spec = MODELS["focalclick-segformer-b0-s2"]
    assert spec.family == "clickseg" and spec.needs_weights
    predictor = make_focalclick_segformer_b0_s2(
        checkpoint=str(equivalence / f"{B0}_random.pth"), device="cpu"
    )
    described = predictor.describe()
    assert described["infer_size"] == 256 and described["flip"] is False
    assert described["official_threshold"] == 0.5 and described["strict_load"] is True
    with pytest.raises(ValueError, match="without flip"):
        make_focalclick_segformer_b0_s2(checkpoint=str(equivalence / f"{B0}_random.pth"), flip=True)


def test_batched_predictor_reproduces_the_fake_net_pipeline(pipeline_golden, data_root):
    """GrabCut[0..2] in flight together (`open_instance` / `predict_batch`): one coarse forward
    per round, and every click, ROI, focus box and IoU still as the official batch-1 run."""
    record = pipeline_golden["settings"]["focalclick"]
    insts = [i for i in record["instances"] if i["dataset"] == "GrabCut"][:3]
    calls: list[int] = []

    class CountingNet(FakeFocalNet):
        def __call__(self, image, points):
            calls.append(image.shape[0])
            return super().__call__(image, points)

    predictor = FocalPredictor(CountingNet())
    refs = list_samples("grabcut", data_root)
    samples = [refs[i["index"]].load()[0] for i in insts]
    handles = [predictor.open_instance(s) for s in samples]
    clicks: list[list[Click]] = [[] for _ in samples]
    preds = [np.zeros(s.gt.shape, dtype=bool) for s in samples]
    for k in range(len(insts[0]["per_click"])):
        for j, sample in enumerate(samples):
            clicks[j].append(next_click(sample.gt, preds[j], [(c.y, c.x) for c in clicks[j]]))
        probs = predictor.predict_batch(list(zip(handles, clicks)))
        for j, (sample, handle, prob) in enumerate(zip(samples, handles, probs)):
            want = insts[j]["per_click"][k]
            preds[j] = prob > PRED_THR
            trace = handle.state.trace
            assert (clicks[j][-1].y, clicks[j][-1].x) == (want["y"], want["x"])
            assert list(trace.focus_roi) == want["focus_roi"]
            assert (list(trace.roi) if trace.roi else None) == want["roi"]
            assert float(iou(sample.gt, preds[j])) == pytest.approx(want["iou"], abs=1e-6)
    assert calls == [3] * len(insts[0]["per_click"])
    with pytest.raises(ValueError, match="more than once"):
        predictor.predict_batch([(handles[0], clicks[0]), (handles[0], clicks[0])])


def test_batched_b0_predictor_matches_one_at_a_time(b0_model, data_root):
    """The real network batched (two instances per coarse forward) against batch 1: equal up to
    the float rounding of the batched kernels, and the same focus boxes."""
    refs = list_samples("grabcut", data_root)
    samples = [refs[i].load()[0] for i in (0, 1)]
    clicks = [
        [Click(210, 230, True), Click(150, 232, True)],
        [Click(160, 240, True), Click(100, 300, False)],
    ]
    batched = FocalPredictor(b0_model)
    handles = [batched.open_instance(s) for s in samples]
    singles = [FocalPredictor(b0_model) for _ in samples]
    for single, sample in zip(singles, samples):
        single.start(sample)
    for k in (1, 2):
        probs = batched.predict_batch([(h, c[:k]) for h, c in zip(handles, clicks)])
        for j, single in enumerate(singles):
            want = single.predict(clicks[j][:k])
            np.testing.assert_allclose(probs[j], want, rtol=0, atol=2e-4)
            assert single.state.trace.focus_roi == handles[j].state.trace.focus_roi
