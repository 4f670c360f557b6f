"""Peak-memory measurement of `bench profile` on the CPU (the CUDA path needs a GPU)."""

from __future__ import annotations

import sys

import pytest
import torch

from bench.profile import memory as profile_memory

MIB = 2**20
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="peak RSS reset needs Linux /proc"
)


def _filled(mib: int) -> torch.Tensor:
    """A tensor whose pages are really touched (zeros may stay unmapped)."""
    return torch.full((mib * MIB // 4,), 1.5, dtype=torch.float32)


def test_cpu_peak_counts_resident_preparation_and_transient_work():
    held = {}

    def prepare():
        return _filled(96)

    def run(weights):
        activations = _filled(64)
        held["sum"] = float(weights[:10].sum() + activations[:10].sum())
        del activations

    weights, peak = profile_memory.measure_peak_memory(prepare, run, "cpu")
    assert peak.kind == profile_memory.CPU_KIND
    assert weights.numel() == 96 * MIB // 4
    # 96 MiB resident + 64 MiB transient; RSS adds allocator/interpreter noise on top.
    assert 155 <= peak.mib <= 185


def test_transient_peak_of_preparation_is_not_counted():
    def prepare():
        scratch = _filled(128)  # freed before the measured work starts
        kept = _filled(32)
        del scratch
        return kept

    _, peak = profile_memory.measure_peak_memory(prepare, lambda kept: None, "cpu")
    assert 30 <= peak.mib <= 48


def test_a_second_measurement_is_not_hidden_by_an_earlier_peak():
    """The high-water mark is reset, so a small job after a big one is measured on its own."""
    profile_memory.measure_peak_memory(lambda: None, lambda _: _filled(160), "cpu")
    _, small = profile_memory.measure_peak_memory(lambda: None, lambda _: _filled(40), "cpu")
    assert 36 <= small.mib <= 52
