"""FocalClick HRNet-18s-S2 (ClickSEG): manifest, strict loading, and the coarse forward against
RITM's HRNet-18s (the same official `hrnet_ocr.py` network, itself verified on the RITM
fixtures in test_ritm_network.py). golden/clickseg has no forward fixture for this model."""

from __future__ import annotations

import json

import pytest
import torch

from bench.adapters.checkpoint import CheckpointError
from bench.adapters.clickseg.hrnet import FocalHRNetModel
from bench.adapters.clickseg.predictor import load_clickseg, make_focalclick_hrnet18s_s2
from bench.adapters.ritm.network import HRNET_VARIANTS, HRNetModel

MANIFEST = "focalclick_hrnet18s_s2"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def manifest(golden):
    return json.loads((golden / "clickseg" / "manifests" / f"{MANIFEST}.json").read_text())


def test_hrnet18s_state_dict_matches_manifest(manifest):
    model = FocalHRNetModel("hrnet18s")
    got = [
        (n, list(t.shape), str(t.dtype).removeprefix("torch."))
        for n, t in model.state_dict().items()
    ]
    assert got == [(e["name"], e["shape"], e["dtype"]) for e in manifest["state_dict"]]
    counts = manifest["param_counts"]
    assert sum(p.numel() for p in model.parameters()) == counts["total_parameters"]
    for module, record in counts["by_top_level_module"].items():
        sub = getattr(model, module, None)
        assert (sum(p.numel() for p in sub.parameters()) if sub else 0) == record["params"]


def _official_format_checkpoint(manifest, path, model):
    """An official-format file ({"state_dict", "config"} with the manifest's saved config)."""
    torch.save({"state_dict": model.state_dict(), "config": manifest["config"]}, path)
    return path


def test_coarse_forward_is_ritm_hrnet18s_and_refiner_runs(manifest, tmp_path):
    torch.manual_seed(0)
    focal = FocalHRNetModel("hrnet18s")
    for p in focal.parameters():
        p.data.uniform_(-0.2, 0.2)
    path = _official_format_checkpoint(manifest, tmp_path / "hrnet18s_S2.pth", focal)
    model, record = load_clickseg("focalclick-hrnet18s-s2", path)
    assert record["strict_load"] is True
    ritm = HRNetModel(HRNET_VARIANTS["hrnet18s"]).eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("refiner.")}
    ritm.load_state_dict(state, strict=True)
    x = torch.rand(1, 4, 64, 96)
    points = torch.tensor([[[20.0, 30.0, 0], [40.0, 70.0, 1]]], dtype=torch.float64)
    with torch.no_grad():
        out = model(x, points)
        want = ritm(x, points)
        refined = model.refine(
            x[:, :3, :64, :64],
            points,
            out["feature"],
            out["instances"][:, :, :, :64],
            torch.tensor([[0, 8.0, 4.0, 56.0, 60.0]]),
        )
    torch.testing.assert_close(out["instances"], want["instances"], rtol=0, atol=1e-5)
    torch.testing.assert_close(out["instances_aux"], want["instances_aux"], rtol=0, atol=1e-5)
    assert out["feature"].shape == (1, 96, 16, 24)
    assert refined["instances_refined"].shape == (1, 1, 64, 64)
    assert torch.isfinite(refined["instances_refined"]).all()


def test_ritm_and_segformer_checkpoints_are_refused(manifest, tmp_path, golden):
    ritm = HRNetModel(HRNET_VARIANTS["hrnet18s"])
    ritm_config = {
        "class": manifest["config"]["class"],
        "params": {
            k: v for k, v in manifest["config"]["params"].items() if k != "pipeline_version"
        },
    }
    path = tmp_path / "ritm.pth"
    torch.save({"state_dict": ritm.state_dict(), "config": ritm_config}, path)
    with pytest.raises(CheckpointError, match="pipeline_version"):
        load_clickseg("focalclick-hrnet18s-s2", path)
    bare = tmp_path / "ritm_bare.pth"
    torch.save(ritm.state_dict(), bare)
    with pytest.raises(CheckpointError, match="missing key.*refiner.image_conv1"):
        load_clickseg("focalclick-hrnet18s-s2", bare)
    segformer = golden / "clickseg" / "equivalence" / "focalclick_segformer_b0_s2_random.pth"
    with pytest.raises(CheckpointError, match="SegFormerModel, not of FocalClick HRNet"):
        make_focalclick_hrnet18s_s2(checkpoint=str(segformer))
