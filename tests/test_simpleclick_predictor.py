"""The SimpleClick evaluation predictor against the official 5-click run; registry entries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.adapters import MODELS, make_predictor
from bench.adapters.checkpoint import CheckpointError
from bench.adapters.common.points import NetClick
from bench.adapters.common.zoom_in import ZoomState, zoom_forward
from bench.adapters.simpleclick.predictor import make_vit_b, make_vit_xt, zoom_rule
from bench.protocol import iou
from bench.sample import Click, Sample

XTINY = "simpleclick_vit_xtiny448"


@pytest.fixture(scope="module")
def checkpoint(golden: Path) -> Path:
    return golden / "equivalence" / f"{XTINY}_random.pth"


@pytest.fixture(scope="module")
def recorded(golden: Path) -> tuple[dict[str, np.ndarray], list[dict]]:
    arrays = dict(np.load(golden / "equivalence" / f"{XTINY}_predictor.npz"))
    summary = json.loads((golden / "equivalence" / "summary.json").read_text())
    return arrays, summary["models"][XTINY]["predictor_run"]["per_click"]


@pytest.mark.slow
def test_teacher_forced_run_matches_official_predictor(checkpoint: Path, recorded) -> None:
    arrays, per_click = recorded
    predictor = make_predictor(
        MODELS["simpleclick-vit-xt"], checkpoint=str(checkpoint), device="cpu"
    )
    sample = Sample("124080", arrays["image_uint8"], arrays["gt_mask"], "GrabCut")
    predictor.start(sample)
    clicks: list[Click] = []
    for k, record in enumerate(per_click):
        clicks.append(Click(record["y"], record["x"], record["is_positive"]))
        prob = predictor.predict(clicks)
        assert prob.dtype == np.float32 and prob.shape == arrays["gt_mask"].shape
        # golden/README.md §3: teacher-forced maps atol 2e-4, IoU atol 1e-3, ROIs equal.
        np.testing.assert_allclose(prob, arrays["probs"][k], rtol=0, atol=2e-4)
        assert abs(float(iou(arrays["gt_mask"], prob > 0.49)) - record["iou"]) <= 1e-3
        assert list(predictor.pipeline.state.zoom.roi) == record["zoom_in_roi_rmin_rmax_cmin_cmax"]


def test_dataset_change_resizes_pos_embed_from_the_trained_grid(checkpoint: Path, recorded) -> None:
    arrays, _ = recorded
    predictor = make_vit_xt(checkpoint=str(checkpoint), device="cpu")
    pristine = predictor.model.backbone.pos_embed.detach().clone()
    image, gt = arrays["image_uint8"], arrays["gt_mask"]
    predictor.start(Sample("a", image, gt, "DAVIS"))
    assert predictor.model.backbone.pos_embed.shape == (1, 1 + 42 * 42, 160)  # 672 / 16
    predictor.start(Sample("b", image, gt, "GrabCut"))
    assert torch.equal(predictor.model.backbone.pos_embed, pristine)


def test_describe_names_the_run_settings(checkpoint: Path, golden: Path) -> None:
    summary = json.loads((golden / "equivalence" / "summary.json").read_text())
    predictor = make_vit_xt(
        checkpoint=str(checkpoint), device="cpu", flip="false", dtype="bfloat16"
    )
    description = predictor.describe()
    assert description["checkpoint_sha256"] == summary["models"][XTINY]["checkpoint_sha256"]
    assert description["checkpoint"] == str(checkpoint)
    assert description["flip"] is False and predictor.pipeline.with_flip is False
    assert description["dtype"] == "bfloat16" and description["device"] == "cpu"
    assert predictor.model.backbone.pos_embed.dtype == torch.bfloat16
    assert description["zoom_in"]["DAVIS"]["target_size"] == (672, 672)
    assert description["config"]["embed_dim"] == 160


def test_missing_checkpoint_names_files_and_page() -> None:
    with pytest.raises(ValueError) as error:
        make_vit_b(device="cpu")
    message = str(error.value)
    assert "cocolvis_vit_base.pth" in message and "sbd_vit_base.pth" in message
    assert "github.com/uncbiag/SimpleClick" in message
    with pytest.raises(TypeError, match="unknown options"):
        make_vit_b(checkpoint="x.pth", zoom="yes")


def test_wrong_checkpoints_are_refused(checkpoint: Path, golden: Path) -> None:
    with pytest.raises(CheckpointError, match="use model simpleclick-vit-xt"):
        make_vit_b(checkpoint=str(checkpoint), device="cpu")
    ritm = golden / "equivalence" / "ritm_hrnet18s_random.pth"
    with pytest.raises(CheckpointError, match="HRNetModel, not of SimpleClick ViT-xTiny"):
        make_vit_xt(checkpoint=str(ritm), device="cpu")


def test_zoom_in_ablation_uses_the_whole_image() -> None:
    prev = torch.zeros(1, 1, 300, 400)
    prev[..., 100:140, 200:260] = 1.0  # a small object: the official rule would crop around it
    x = torch.cat((torch.rand(1, 3, 300, 400), prev), dim=1)
    clicks = [NetClick(120, 230, 0, True)]
    state = ZoomState(has_prev=True)
    official = zoom_rule(None, zoom_in=True)("GrabCut")
    ablation = zoom_rule(None, zoom_in=False)("GrabCut")
    _, zoomed = zoom_forward(official, state, x, prev, clicks)
    view, whole = zoom_forward(ablation, state, x, prev, clicks)
    assert zoomed.roi != (0, 299, 0, 399)
    assert whole.roi == (0, 299, 0, 399) and view.image.shape[2:] == (448, 448)
    assert zoom_rule(224, zoom_in=True)("DAVIS").target_size == (224, 224)


def test_registry_entries() -> None:
    expected = {
        "simpleclick-vit-xt": 3.72,
        "simpleclick-vit-b": 96.46,
        "simpleclick-vit-l": 322.18,
        "simpleclick-vit-h": 659.39,
        "simpleclick-vit-b224": 96.46,
    }
    for name, params in expected.items():
        spec = MODELS[name]
        assert spec.family == "simpleclick" and spec.needs_weights
        assert spec.params_m == params
        assert spec.checkpoint_files and spec.download_page.startswith("https://github.com/uncbiag")
        module, _, attr = spec.factory.partition(":")
        assert callable(getattr(__import__(module, fromlist=[attr]), attr))
    assert "cocolvis_vit_huge.pth" in MODELS["simpleclick-vit-h"].checkpoint_files
    # Listing models must stay cheap: the registry module does not import torch.
    code = "import sys, bench.adapters.simpleclick.models; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
