"""`bench profile` for the SAM family: the image encoder (once per instance) and the decoder (per
click) counted and timed apart, plus the counting fixes they needed (thop's leftover hooks on a
shared module, attention through `F.scaled_dot_product_attention` on the CPU)."""

from __future__ import annotations

import contextlib
import csv
import importlib.util

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from bench import profile
from bench.adapters import MODELS
from bench.cli import main
from bench.profile import clicks as profile_clicks
from bench.profile import sam as profile_sam
from bench.profile.counts import count_full_flops_on, count_paper_flops_on

HAVE_PACKAGES = all(
    importlib.util.find_spec(m) for m in ("segment_anything", "sam2", "segment_anything_hq")
)
needs_packages = pytest.mark.skipif(
    not HAVE_PACKAGES, reason="official packages not installed (README, SAM-family models)"
)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

EFFICIENTVIT_SAM_VIT_H_GMACS = 2973
"""Zhang, Cai, Han, EfficientViT-SAM (arXiv 2402.05008), introduction: SAM's ViT-H image encoder
"requires 2973 GMACs per image"."""


@needs_packages
def test_every_sam_model_is_profilable_at_1024():
    sam_models = [name for name, spec in MODELS.items() if spec.family in profile_sam.SAM_FAMILIES]
    assert len(sam_models) == 15  # SAM 3, SAM 2 / 2.1 8, SAM-HQ 3, MobileSAM
    for name in sam_models:
        target = profile.resolve_target(name)
        assert (target.family, target.size, target.variant) == (MODELS[name].family, 1024, name)
    with pytest.raises(ValueError, match="runs at 1024 x 1024 only"):
        profile_sam.profile_sam(profile.resolve_target("sam-vit-b"), 448)


@needs_packages
def test_mobilesam_and_sam_hq_counts(golden):
    """MobileSAM's encoder as thop counts it in golden/mobilesam/compute.json (73.49 GFLOPs,
    5,735,616 parameters: the unused classifier, the attention biases and the neck's
    LayerNorm2d are not seen); SAM-HQ's encoder is SAM's, its decoder SAM's plus the HQ layers
    (which also read the ViT's 64 x 64 map)."""
    import json

    runs = json.loads((golden / "mobilesam" / "compute.json").read_text())["runs"]
    mobile = profile_sam.count_sam_network(profile.resolve_target("mobilesam"))
    assert mobile.encoder_paper.macs == runs[0]["thop_MACs"]
    assert mobile.encoder_paper.params == runs[0]["thop_params"]
    assert mobile.params.total == 10_130_092
    sam = profile_sam.count_sam_network(profile.resolve_target("sam-vit-b"))
    hq = profile_sam.count_sam_network(profile.resolve_target("sam-hq-vit-b"))
    assert hq.encoder_paper == sam.encoder_paper and hq.encoder_full == sam.encoder_full
    assert hq.decoder_full > sam.decoder_full and hq.decoder_paper.macs > sam.decoder_paper.macs
    assert mobile.decoder_full == sam.decoder_full  # SAM's prompt encoder and mask decoder


@needs_packages
def test_sam_encoder_and_decoder_counts():
    """Meta device (shapes only): ViT-H costs no memory. The decoder is the same network in every
    SAM size; the ViT-H encoder agrees with the published 2973 GMACs to 0.26 % (2980.5)."""
    names = ("sam-vit-b", "sam-vit-h")
    counted = {n: profile_sam.count_sam_network(profile.resolve_target(n)) for n in names}
    for name, counts in counted.items():
        assert counts.params.total / 1e6 == pytest.approx(MODELS[name].params_m, abs=0.005)
        assert counts.encoder_full > counts.encoder_paper.macs * 2  # attention products too
    vit_b, vit_h = counted["sam-vit-b"], counted["sam-vit-h"]
    assert vit_b.decoder_full == vit_h.decoder_full == 3_677_294_080
    assert vit_b.decoder_paper == vit_h.decoder_paper
    assert vit_h.encoder_full / 2e9 == pytest.approx(EFFICIENTVIT_SAM_VIT_H_GMACS, rel=0.0026)
    assert round(vit_b.encoder_full / 2e9, 2) == 486.04


class _SharedChild(nn.Module):
    """One module registered under two parents, as SAM 2's Hiera shares its q-pool MaxPool2d."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.block = nn.Sequential(nn.Conv2d(3, 4, 1))
        self.block.pool = self.pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block.pool(self.block(x))


def test_thop_leaves_no_hook_behind_on_a_shared_module():
    model = _SharedChild().eval()
    x = torch.randn(1, 3, 8, 8)
    count_paper_flops_on(model, (x,))
    assert all(not m._forward_hooks for m in model.modules())
    assert all("total_ops" not in m._buffers for m in model.modules())
    total, _ = count_full_flops_on(model, (x,))  # a thop hook left behind would fail here
    assert total == 2 * 4 * 3 * 8 * 8


class _Attention(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_full_count_includes_sdpa_attention_on_every_device(device):
    b, h, n, d = 2, 3, 50, 16
    q = k = v = torch.randn(b, h, n, d, device=device)
    total, by_op = count_full_flops_on(_Attention(), (q, k, v))
    assert total == 2 * (2 * b * h * n * n * d)  # q @ k^T and attn @ v
    assert set(by_op) == {"aten.bmm"}


def test_forward_timer_shares_one_list_between_modules():
    first, second = nn.Linear(3, 3), nn.Linear(3, 3)
    with profile_clicks.forward_timer([first, second], "cpu") as durations:
        second(first(torch.zeros(1, 3)))
        first(torch.zeros(1, 3))
    assert len(durations) == 3 and all(d >= 0 for d in durations)
    assert not first._forward_hooks and not second._forward_pre_hooks


@pytest.mark.slow
@needs_packages
def test_profile_csv_row_of_sam2_with_encoder_and_decoder_apart(tmp_path):
    out = tmp_path / "profile"
    result = CliRunner().invoke(
        main,
        ["profile", "--models", "sam2-hiera-t", "--dataset", "demo", "--limit", "2",
         "--clicks", "3", "--warmup", "1", "--threads", "2", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    with (out / "profile.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["model"] == "sam2-hiera-t" and row["input_size"] == "1024"
    assert row["timing_split"] == profile_sam.TIMING_SPLIT
    number = {}
    for key, value in row.items():
        with contextlib.suppress(ValueError):  # text columns (conventions) and empty cells
            number[key] = float(value)
    assert number["params_M"] == pytest.approx(38.945986)
    assert number["params_encoder_M"] == pytest.approx(27.219136)
    assert number["gflops_full"] == pytest.approx(
        number["gflops_encoder_full"] + number["gflops_decoder_full"], rel=1e-6
    )
    assert number["gflops_encoder_full"] > 50 * number["gflops_decoder_full"]
    # encoder once per instance (the second instance; the first warms up), decoder per click
    assert number["spc_encoder_instances"] == 1
    assert number["spc_encoder_median_s"] > number["spc_model_median_s"] > 0
    assert number["spc_start_median_s"] >= number["spc_encoder_median_s"]
    assert number["spc_timed_clicks"] == 2 * 3 - 1
    assert row["peak_mem_MiB"] and row["params_backbone_M"] == ""


@needs_packages
def test_table5_shows_encoder_and_decoder_apart(tmp_path):
    import pandas as pd

    from bench.reports.runs import Run
    from bench.reports.tables import MISSING, compute_table

    target = profile.resolve_target("sam-vit-b")
    spc = profile_clicks.SpcSummary("GrabCut", 38, 2, 0.05, 0.01, 0.02, 0.005, 0.07, 0.07)
    encoder = profile_sam.EncoderSummary(9.5, 0.5, 9.7, 1)
    row = profile_sam.make_sam_row(
        profile,
        target,
        torch.device("cpu"),
        torch.float32,
        profile_sam.count_sam_network(target),
        None,
        spc,
        encoder,
    )
    frame = pd.read_csv(profile.write_csv([row], tmp_path / "profile.csv"))
    run = Run(tmp_path, "SAM ViT-B", {"model": {"name": "sam-vit-b"}}, pd.DataFrame(), frame)
    table = compute_table([run])
    cells = dict(zip([h for _, h in table.display.columns], table.display.iloc[0], strict=True))
    assert cells["GFLOPs, full"] == f"{972.077334528 + 3.67729408:.2f}"
    assert cells["GFLOPs full, encoder / decoder"] == "972.08 / 3.68"
    assert cells["SPC model (s), median [IQR]"] == "0.0500 [0.0100]"
    assert cells["Encoder (s/instance), median [IQR]"] == "9.5000 [0.5000]"
    assert cells["Peak memory (MiB)"] == MISSING
    assert any("SAM family: the image encoder runs once per instance" in n for n in table.notes)
