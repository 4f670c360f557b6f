"""RITM HRNet-OCR network against the golden manifests, compute figures and official outputs.

golden/README.md sections 1-3: the state_dict layout must equal the official one (so released
checkpoints load with strict=True), thop's counts must equal the paper's Table 5 and the
official notebook method, and the random-weight checkpoint must reproduce the official
forward pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.adapters.ritm.network import (
    HRNetConfig,
    ScaleLayer,
    build_hrnet,
    config_from_params,
    model_from_config,
)

VARIANTS = ["hrnet18s", "hrnet18", "hrnet32"]


def _manifest(golden: Path, variant: str) -> dict:
    return json.loads((golden / "manifests" / f"ritm_{variant}.json").read_text())


def _meta_model(variant: str) -> torch.nn.Module:
    with torch.device("meta"):
        return build_hrnet(variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_layout_equals_official(golden: Path, variant: str) -> None:
    manifest = _manifest(golden, variant)
    ours = [
        {"name": name, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
        for name, t in _meta_model(variant).state_dict().items()
    ]
    assert len(ours) == manifest["num_state_dict_entries"]
    assert ours == manifest["state_dict"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_counts_equal_manifest(golden: Path, variant: str) -> None:
    counts = _manifest(golden, variant)["param_counts"]
    model = _meta_model(variant)
    assert sum(p.numel() for p in model.parameters()) == counts["total_parameters"]
    buffers = sum(b.numel() for b in model.buffers())
    assert buffers == counts["buffer_elements_in_state_dict"]
    for name, child in model.named_children():
        expected = counts["by_top_level_module"][name]["params"]
        assert sum(p.numel() for p in child.parameters()) == expected, name
    second = counts["by_second_level_module"]["feature_extractor"]
    ours = {
        name: sum(p.numel() for p in child.parameters())
        for name, child in model.feature_extractor.named_children()
        if any(True for _ in child.parameters())
    }
    assert ours == {name: entry["params"] for name, entry in second.items()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_in_manifest_builds_the_variant(golden: Path, variant: str) -> None:
    params = _manifest(golden, variant)["config"]["params"]
    config = config_from_params(params)
    assert config == HRNetConfig(
        width=params["width"]["value"],
        ocr_width=params["ocr_width"]["value"],
        small=params["small"]["value"],
        with_aux_output=True,
    )
    with torch.device("meta"):
        from_config = model_from_config(params)
    shapes = {k: v.shape for k, v in from_config.state_dict().items()}
    assert shapes == {k: v.shape for k, v in _meta_model(variant).state_dict().items()}


def test_config_with_unsupported_setting_is_refused(golden: Path) -> None:
    params = dict(_manifest(golden, "hrnet18s")["config"]["params"])
    params["use_rgb_conv"] = {"type": "builtin", "value": True, "specified": True}
    with pytest.raises(ValueError, match="use_rgb_conv"):
        config_from_params(params)
    params = dict(_manifest(golden, "hrnet18s")["config"]["params"])
    params["norm_radius"] = {"type": "builtin", "value": 3, "specified": True}
    with pytest.raises(ValueError, match="norm_radius"):
        config_from_params(params)


@pytest.mark.parametrize("variant", VARIANTS)
def test_thop_counts_equal_paper_table5(golden: Path, variant: str) -> None:
    """Official notebook method: thop.profile on 1x4x400x400 and a 1x2x3 points tensor."""
    thop = pytest.importorskip("thop")
    manifest = _manifest(golden, variant)
    run = json.loads((golden / "compute.json").read_text())["models"][f"ritm_{variant}"]["runs"][0]
    assert run["input"] == [1, 4, 400, 400]
    torch.manual_seed(0)
    model = build_hrnet(variant).eval()
    macs, params = thop.profile(
        model, inputs=(torch.randn(1, 4, 400, 400), torch.randn(1, 2, 3)), verbose=False
    )
    # thop leaves out the ScaleLayer scalar (no rule for it): one less than the state_dict.
    assert int(params) == manifest["param_counts"]["thop_params_paper_convention"]
    assert round(params / 1e6, 2) == manifest["paper"]["table5_params_M"]
    assert int(macs) == run["thop_MACs"]
    assert round(2 * macs / 1e9, 2) == manifest["paper"]["table5_gflops"]["400"]


def test_scale_layer_uses_absolute_value() -> None:
    layer = ScaleLayer(init_value=0.05)
    with torch.no_grad():
        layer.scale.fill_(-0.5)
    assert torch.equal(layer(torch.tensor([2.0, -4.0])), torch.tensor([1.0, -2.0]))


@pytest.fixture(scope="module")
def hrnet18s_random(golden: Path) -> torch.nn.Module:
    checkpoint = torch.load(
        golden / "equivalence" / "ritm_hrnet18s_random.pth", map_location="cpu", weights_only=True
    )
    assert checkpoint["config"]["class"] == "isegm.model.is_hrnet_model.HRNetModel"
    model = model_from_config(checkpoint["config"]["params"])
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    return model.eval()


def test_forward_matches_official_outputs(golden: Path, hrnet18s_random: torch.nn.Module) -> None:
    io = np.load(golden / "equivalence" / "ritm_hrnet18s_io.npz")
    lowres: dict[str, list[torch.Tensor]] = {}
    hook = hrnet18s_random.feature_extractor.register_forward_hook(
        lambda module, args, out: lowres.update(out=out)
    )
    try:
        with torch.no_grad():
            out = hrnet18s_random(torch.from_numpy(io["input"]), torch.from_numpy(io["points"]))
    finally:
        hook.remove()
    for key in ("instances", "instances_aux"):
        assert out[key].shape == io[key].shape
        np.testing.assert_allclose(out[key].numpy(), io[key], rtol=0, atol=5e-4, err_msg=key)
    for i, ours in enumerate(lowres["out"]):
        ref = io[f"feature_extractor_out_{i}"]
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=2e-4, err_msg=f"out_{i}")


def test_int64_points_give_the_same_logits(golden: Path, hrnet18s_random: torch.nn.Module) -> None:
    """RITM's first click arrives as an int64 points tensor (PROTOCOL.md 6.5)."""
    io = np.load(golden / "equivalence" / "ritm_hrnet18s_io.npz")
    x = torch.from_numpy(io["input"])
    with torch.no_grad():
        as_float = hrnet18s_random(x, torch.from_numpy(io["points"]))["instances"]
        as_int = hrnet18s_random(x, torch.from_numpy(io["points"]).long())["instances"]
    assert torch.equal(as_float, as_int)


def test_odd_input_size_gives_logits_at_input_size(hrnet18s_random: torch.nn.Module) -> None:
    """Click 1 runs at the native image size, e.g. 321 x 481 for GrabCut 124080."""
    x = torch.zeros(1, 4, 101, 147)
    points = torch.tensor([[[50, 70, 0], [-1, -1, -1]]])
    with torch.no_grad():
        out = hrnet18s_random(x, points)
    assert out["instances"].shape == (1, 1, 101, 147)
    assert out["instances_aux"].shape == (1, 1, 101, 147)
    assert torch.isfinite(out["instances"]).all()
