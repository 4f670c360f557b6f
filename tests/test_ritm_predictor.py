"""RITM evaluation predictor against the official 5-click run, plus registry and option errors.

golden/README.md section 3: teacher-force the recorded clicks of the official evaluation loop
(ZoomIn target 400, skip_clicks 1, flip averaging) through our predictor built from the
random-weight HRNet-18s checkpoint; compare every probability map, IoU and zoom-in ROI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.adapters import MODELS, resolve_model
from bench.adapters.checkpoint import CheckpointError
from bench.adapters.ritm.models import DOWNLOAD_PAGE
from bench.adapters.ritm.predictor import load_hrnet, make_hrnet18s, make_hrnet32
from bench.protocol import binarize, iou
from bench.sample import Click, Sample


@pytest.fixture(scope="module")
def random_checkpoint(golden: Path) -> Path:
    return golden / "equivalence" / "ritm_hrnet18s_random.pth"


def test_teacher_forced_clicks_reproduce_official_predictor(
    golden: Path, random_checkpoint: Path
) -> None:
    recorded = np.load(golden / "equivalence" / "ritm_hrnet18s_predictor.npz")
    summary = json.loads((golden / "equivalence" / "summary.json").read_text())
    run = summary["models"]["ritm_hrnet18s"]["predictor_run"]
    assert run["setup"]["zoom_in_params"] == {"target_size": 400}

    predictor = make_hrnet18s(checkpoint=random_checkpoint, device="cpu")
    gt = recorded["gt_mask"]
    predictor.start(Sample("124080", recorded["image_uint8"], gt, run["sample"]["dataset"]))
    clicks: list[Click] = []
    for k, step in enumerate(run["per_click"]):
        clicks.append(Click(step["y"], step["x"], step["is_positive"]))
        prob = predictor.predict(clicks)
        assert prob.shape == gt.shape and prob.dtype == np.float32
        np.testing.assert_allclose(prob, recorded["probs"][k], rtol=0, atol=2e-4, err_msg=f"{k}")
        assert float(iou(gt, binarize(prob))) == pytest.approx(step["iou"], abs=1e-3)
        roi = predictor.pipeline.state.zoom.roi
        expected_roi = step["zoom_in_roi_rmin_rmax_cmin_cmax"]
        assert (list(roi) if roi is not None else None) == expected_roi, f"click {k}"


def test_describe_records_checkpoint_and_settings(random_checkpoint: Path) -> None:
    predictor = make_hrnet18s(
        checkpoint=str(random_checkpoint), device="cpu", zoom_in=False, flip="false"
    )
    described = predictor.describe()
    summary_sha = "8b266a58252fcb553e3ad26f8369df9d5a581e946ebf458ccdd72834f77b4251"
    assert described["checkpoint_sha256"] == summary_sha
    assert described["checkpoint"] == str(random_checkpoint)
    assert described["architecture"].startswith("RITM HRNet-18s")
    assert described["zoom_in"] is None and described["flip"] is False
    assert (described["dtype"], described["device"]) == ("float32", "cpu")
    assert predictor.pipeline.zoom_in is None and predictor.pipeline.with_flip is False
    json.dumps(described)  # goes into the run manifest as is


def test_default_describe_has_cvpr_zoom_in(random_checkpoint: Path) -> None:
    described = make_hrnet18s(checkpoint=random_checkpoint, device="cpu").describe()
    assert described["zoom_in"]["default"]["target_size"] == 400
    assert described["zoom_in"]["DAVIS"]["target_size"] == 600
    assert described["zoom_in"]["default"]["skip_clicks"] == 1
    assert described["flip"] is True


def test_missing_checkpoint_names_official_files_and_page() -> None:
    with pytest.raises(ValueError) as error:
        make_hrnet18s()
    assert "coco_lvis_h18s_itermask.pth" in str(error.value)
    assert DOWNLOAD_PAGE in str(error.value)
    assert "releases/tag/v1.0" in DOWNLOAD_PAGE


def test_checkpoint_of_another_variant_is_refused(random_checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="ritm-hrnet18s"):
        make_hrnet32(checkpoint=random_checkpoint, device="cpu")


def test_checkpoint_of_another_family_is_refused(golden: Path) -> None:
    vit = golden / "equivalence" / "simpleclick_vit_xtiny448_random.pth"
    with pytest.raises(CheckpointError, match="PlainVitModel"):
        make_hrnet18s(checkpoint=vit, device="cpu")


def test_unknown_option_and_dtype_are_refused(random_checkpoint: Path) -> None:
    with pytest.raises(TypeError, match="zoomin"):
        make_hrnet18s(checkpoint=random_checkpoint, zoomin=False)
    with pytest.raises(ValueError, match="float64"):
        make_hrnet18s(checkpoint=random_checkpoint, dtype="float64")


def test_registry_entries() -> None:
    expected = {
        "ritm-hrnet18s": (4.22, ("coco_lvis_h18s_itermask.pth",)),
        "ritm-hrnet18": (10.03, ("coco_lvis_h18_itermask.pth", "sbd_h18_itermask.pth")),
        "ritm-hrnet32": (30.95, ("coco_lvis_h32_itermask.pth",)),
    }
    for name, (params_m, files) in expected.items():
        spec = resolve_model(name)
        assert spec is MODELS[name]
        assert (spec.family, spec.needs_weights, spec.params_m) == ("ritm", True, params_m)
        assert spec.checkpoint_files == files
        assert spec.download_page == DOWNLOAD_PAGE
        assert spec.input_size == "native / ROI 400 (600 DAVIS)"
        module, _, attr = spec.factory.partition(":")
        assert callable(getattr(__import__(module, fromlist=[attr]), attr))


def test_registry_module_does_not_import_torch() -> None:
    code = "import sys, bench.adapters.ritm.models; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_strict_load_rejects_a_checkpoint_with_missing_weights(
    random_checkpoint: Path, tmp_path: Path
) -> None:
    """The official loader (strict=False) would keep random weights here; we refuse the file."""
    checkpoint = torch.load(random_checkpoint, map_location="cpu", weights_only=True)
    del checkpoint["state_dict"]["feature_extractor.cls_head.weight"]
    broken = tmp_path / "broken.pth"
    torch.save(checkpoint, broken)
    with pytest.raises(CheckpointError, match="cls_head.weight"):
        make_hrnet18s(checkpoint=broken, device="cpu")


def test_bare_state_dict_loads_as_the_named_variant(
    random_checkpoint: Path, tmp_path: Path
) -> None:
    state_dict = torch.load(random_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    bare = tmp_path / "bare.pth"
    torch.save(state_dict, bare)
    model, record = load_hrnet("hrnet18s", bare)
    assert record["strict_load"] and record["checkpoint_weights_only"]
    loaded = model.state_dict()
    assert list(loaded) == list(state_dict)
    assert all(torch.equal(loaded[name], tensor) for name, tensor in state_dict.items())
    with pytest.raises(CheckpointError, match="missing"):
        load_hrnet("hrnet18", bare)
