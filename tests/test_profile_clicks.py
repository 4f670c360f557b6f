"""The timed click loop of `bench profile` on the bundled demo images.

Stand-in networks make the loop's bookkeeping checkable (how many clicks, which forward
passes land in which click, what is left out as warm-up); one slow test runs a real
random-init network through the adapters' evaluation predictor.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from bench import profile
from bench.datasets import list_samples
from bench.profile import clicks as profile_clicks
from bench.sample import Click, Sample

SLEEP_S = 0.01


def _demo_samples(n: int) -> list[Sample]:
    return [s for ref in list_samples("demo")[:n] for s in ref.load()]


class SleepyNet(nn.Module):
    """Takes at least SLEEP_S per call and returns its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(SLEEP_S)
        return x


class TwoPassPredictor:
    """Calls the network twice per click (like flip TTA run unbatched) and predicts either
    nothing or the ground truth."""

    oracle = True  # reads sample.gt

    def __init__(self, network: nn.Module, perfect: bool = False):
        self.network = network
        self.perfect = perfect
        self.gt: np.ndarray | None = None
        self.calls: list[int] = []

    def start(self, sample: Sample) -> None:
        self.gt = sample.gt

    def predict(self, clicks: list[Click]) -> np.ndarray:
        self.calls.append(len(clicks))
        x = torch.zeros(1)
        self.network(x)
        self.network(x)
        assert self.gt is not None
        return (self.gt == 1).astype(np.float32) if self.perfect else np.zeros(self.gt.shape)


def test_every_click_is_timed_and_the_network_share_is_separated():
    samples = _demo_samples(2)
    predictor = TwoPassPredictor(SleepyNet())
    times = profile_clicks.time_clicks(predictor, predictor.network, samples, max_clicks=3)
    assert [(t.sample_id, t.click_index) for t in times] == [
        (s.id, k) for s in samples for k in (1, 2, 3)
    ]
    assert predictor.calls == [1, 2, 3, 1, 2, 3]  # all clicks so far, as the runner passes them
    assert all(t.forward_calls == 2 for t in times)
    assert all(t.model_s >= 2 * SLEEP_S for t in times)
    assert all(t.total_s >= t.model_s and t.harness_s == t.total_s - t.model_s for t in times)


def test_hooks_are_removed_after_the_loop():
    network = SleepyNet()
    predictor = TwoPassPredictor(network)
    profile_clicks.time_clicks(predictor, network, _demo_samples(1), max_clicks=1)
    assert not network._forward_hooks and not network._forward_pre_hooks


def test_early_stop_ends_an_instance_at_the_target_iou():
    samples = _demo_samples(2)
    predictor = TwoPassPredictor(SleepyNet(), perfect=True)
    times = profile_clicks.time_clicks(
        predictor, predictor.network, samples, max_clicks=5, stop_at_iou=0.9
    )
    assert [t.click_index for t in times] == [1, 1]
    no_stop = profile_clicks.time_clicks(predictor, predictor.network, samples, max_clicks=5)
    assert len(no_stop) == 10


def test_summary_leaves_out_warmup_clicks_and_reports_median_and_iqr():
    model = [9.0, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    times = [profile_clicks.ClickTime("a", i + 1, m + 0.5 * i, m, 1) for i, m in enumerate(model)]
    summary = profile_clicks.summarize(times, "demo", warmup_clicks=2)
    assert summary.timed_clicks == 5 and summary.warmup_clicks == 2
    assert summary.model_median_s == 3.0
    assert summary.model_iqr_s == pytest.approx(4.0 - 2.0)
    harness = [0.5 * i for i in range(2, 7)]
    assert summary.harness_median_s == pytest.approx(float(np.median(harness)))
    assert summary.dataset == "demo"


@pytest.mark.slow
def test_real_network_through_the_adapters_predictor():
    """ViT-xTiny, random weights, the official SimpleClick evaluation pipeline: one batched
    forward pass (image + its flip) per click, at 448 x 448."""
    target = profile.resolve_target("simpleclick-vit-xt")
    device = torch.device("cpu")
    built, _ = profile.measure_network_memory(target, target.size, device, torch.float32)
    predictor = profile.evaluation_predictor(built, target, target.size, device)
    shapes = []
    built.network.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    times = profile_clicks.time_clicks(
        predictor, built.network, _demo_samples(1), device, max_clicks=2
    )
    assert [t.forward_calls for t in times] == [1, 1]
    assert shapes == [(2, 4, 448, 448)] * 2
    assert all(0 < t.model_s < t.total_s for t in times)
