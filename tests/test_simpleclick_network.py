"""Our PlainVitModel against the official checkpoint manifests and the official forward pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.adapters.checkpoint import config_params, read_checkpoint
from bench.adapters.simpleclick.network import (
    VARIANTS,
    build_simpleclick,
    config_from_params,
    model_from_config,
    resize_pos_embed,
    set_input_size,
    thop_convention_param_count,
)

MANIFESTS = {
    "xtiny": "simpleclick_vit_xtiny448",
    "base": "simpleclick_vit_base448",
    "large": "simpleclick_vit_large448",
    "huge": "simpleclick_vit_huge448",
}
# PROTOCOL.md §7.2 variant table: 0-based global blocks.
GLOBAL_BLOCKS = {
    "xtiny": [1, 3, 5, 7],
    "base": [5, 11],
    "large": [5, 11, 17, 23],
    "huge": [7, 15, 23, 31],
}


def manifest(golden: Path, variant: str) -> dict:
    return json.loads((golden / "manifests" / f"{MANIFESTS[variant]}.json").read_text())


def decode(value):
    """golden/README.md §1 JSON encoding -> Python values (tuples back to tuples)."""
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(decode(v) for v in value["__tuple__"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


@pytest.fixture(scope="module")
def golden_io(golden: Path) -> dict[str, np.ndarray]:
    return dict(np.load(golden / "equivalence" / "simpleclick_vit_xtiny448_io.npz"))


@pytest.fixture(scope="module")
def xtiny_model(golden: Path):
    checkpoint = read_checkpoint(golden / "equivalence" / "simpleclick_vit_xtiny448_random.pth")
    model = model_from_config(config_params(checkpoint))
    model.load_state_dict(checkpoint.state_dict, strict=True)
    return model.eval(), checkpoint


@pytest.mark.parametrize("variant", list(MANIFESTS))
def test_state_dict_and_parameter_counts_match_manifest(golden: Path, variant: str) -> None:
    expected = manifest(golden, variant)
    with torch.device("meta"):
        model = build_simpleclick(variant)
    ours = [
        (k, list(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in model.state_dict().items()
    ]
    assert ours == [(e["name"], e["shape"], e["dtype"]) for e in expected["state_dict"]]

    counts = expected["param_counts"]
    assert sum(p.numel() for p in model.parameters()) == counts["total_parameters"]
    for name, record in counts["by_top_level_module"].items():
        module = getattr(model, name, None)
        ours_count = sum(p.numel() for p in module.parameters()) if module is not None else 0
        assert ours_count == record["params"], name
    for name, record in counts["by_second_level_module"]["backbone"].items():
        attr = name.removesuffix(" (parameter)")
        part = getattr(model.backbone, attr)
        numel = (
            part.numel()
            if isinstance(part, torch.Tensor)
            else sum(p.numel() for p in part.parameters())
        )
        assert numel == record["params"], name

    thop = thop_convention_param_count(model)
    assert thop == counts["thop_params_paper_convention"]
    assert round(thop / 1e6, 2) == expected["paper"]["table5_params_M"]  # 3.72/96.46/322.18/659.39
    assert model.backbone.global_block_indices() == GLOBAL_BLOCKS[variant]


@pytest.mark.parametrize("variant", list(MANIFESTS))
def test_saved_config_rebuilds_the_variant(golden: Path, variant: str) -> None:
    params = {
        k: decode(r["value"]) for k, r in manifest(golden, variant)["config"]["params"].items()
    }
    assert config_from_params(params) == VARIANTS[variant]


def test_unsupported_config_is_refused(golden: Path) -> None:
    params = {
        k: decode(r["value"]) for k, r in manifest(golden, "xtiny")["config"]["params"].items()
    }
    with pytest.raises(ValueError, match="random_split"):
        config_from_params({**params, "random_split": True})


def test_forward_matches_official_xtiny(xtiny_model, golden_io) -> None:
    model, _ = xtiny_model
    x = torch.from_numpy(golden_io["input"])
    points = torch.from_numpy(golden_io["points"])
    assert torch.equal(model.click_maps(x, points), torch.from_numpy(golden_io["coord_features"]))
    with torch.no_grad():
        out = model(x, points, intermediates=True)
    # golden/README.md §3 tolerances for a float32 reimplementation.
    for key, atol in [
        ("instances", 5e-4),
        ("backbone_features", 2e-4),
        ("head_logits_lowres", 2e-4),
    ]:
        expected = torch.from_numpy(golden_io[key])
        assert out[key].shape == expected.shape, key
        assert torch.allclose(out[key], expected, rtol=0, atol=atol), key
    # int64 points (clicks not mapped by a zoom) give the same logits.
    with torch.no_grad():
        out_int = model(x, points.to(torch.int64))
    assert torch.equal(out_int["instances"], out["instances"])


def test_pos_embed_resize_for_davis(xtiny_model) -> None:
    model, checkpoint = xtiny_model
    pristine = checkpoint.state_dict["backbone.pos_embed"]
    assert torch.equal(resize_pos_embed(pristine, (28, 28)), pristine)
    resized = resize_pos_embed(pristine, (42, 42))
    assert resized.shape == (1, 1 + 42 * 42, 160)
    assert torch.equal(resized[:, 0], pristine[:, 0])  # class slot untouched
    # Raster order and axis order: a row ramp in channel 0 and a column ramp in channel 1 must
    # stay a function of the row (resp. column) only, on a non-square target grid.
    ramps = torch.zeros(1, 1 + 28 * 28, 2)
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    ramps[0, 1:, 0], ramps[0, 1:, 1] = rows.flatten(), cols.flatten()
    out = resize_pos_embed(ramps, (42, 30))[0, 1:].reshape(42, 30, 2)
    assert torch.allclose(out[:, :, 0], out[:, :1, 0].expand(42, 30), atol=1e-5)
    assert torch.allclose(out[:, :, 1], out[:1, :, 1].expand(42, 30), atol=1e-5)
    assert (out[1:, 0, 0] >= out[:-1, 0, 0]).all() and out[-1, 0, 0] > 26.9
    assert (out[0, 1:, 1] >= out[0, :-1, 1]).all() and out[0, -1, 1] > 26.9

    x = torch.rand(1, 4, 672, 672)
    points = torch.tensor([[[300.0, 310.0, 0.0], [-1.0, -1.0, -1.0]]])
    with pytest.raises(ValueError, match="pos_embed"):
        model(x, points)
    try:
        set_input_size(model, (672, 672), pristine)
        assert model.backbone.windows_per_axis((42, 42)) == (3, 3)
        with torch.no_grad():
            out = model(x, points)["instances"]
        assert out.shape == (1, 1, 672, 672) and torch.isfinite(out).all()
    finally:
        set_input_size(model, (448, 448), pristine)
    assert torch.equal(model.backbone.pos_embed, pristine)


@pytest.mark.parametrize("size", [448, 224])
def test_thop_count_matches_official_profile(golden: Path, size: int) -> None:
    """thop on our xTiny gives the official MACs/params (compute.json; 10.52 / 2.63 GFLOPs)."""
    thop = pytest.importorskip("thop")
    compute = json.loads((golden / "compute.json").read_text())["models"][MANIFESTS["xtiny"]]
    run = next(r for r in compute["runs"] if r["input"] == [1, 4, size, size])
    model = build_simpleclick("xtiny").eval()
    set_input_size(model, (size, size), model.backbone.pos_embed.detach().clone())
    torch.manual_seed(0)
    inputs = (torch.randn(1, 4, size, size), torch.randn(1, 2, 3))
    macs, params = thop.profile(model, inputs=inputs, verbose=False)
    assert (int(macs), int(params)) == (run["thop_MACs"], run["thop_params"])
