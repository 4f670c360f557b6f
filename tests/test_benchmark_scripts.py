"""The engine benchmarks run end to end, so the GPU script (which no machine here can time)
does not rot: run on the CPU with a tiny workload, it must build its official-format ViT-B
checkpoint, load it, and print the table, the network ceiling and the targets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def table_rows(output: str, first: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines() if line.split()[:1] == [first]]


@pytest.mark.slow
def test_gpu_engine_script_runs_on_the_cpu(shared, tmp_path):
    env = {**os.environ, "DEVICE": "cpu", "DTYPE": "float32", "ISEG_BENCH_SHARED": str(shared),
           "CHECKPOINT": str(tmp_path / "vit_b.pth")}  # fmt: skip
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_engine.sh"), "--instances", "1",
         "--max-clicks", "1", "--batch-sizes", "1,2", "--repeat", "1", "--ceiling-repeat", "1"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wrote random-weight ViT-B checkpoint" in proc.stdout
    rows = table_rows(proc.stdout, "simpleclick-vit-b")
    assert [r[1] for r in rows] == ["1", "2"], proc.stdout
    assert all(r[-1] == "yes" for r in rows), proc.stdout  # same clicks and IoUs as batch 1
    assert re.search(r"network ceiling .* input 2x4x448x448 per instance", proc.stdout)
    assert "targets: x b1 >= 5.00 at batch 16" in proc.stdout


def test_simulated_device_benchmark_layouts_agree(shared):
    """Pipelined and one-cohort runs at batch 4 give batch 1's clicks and IoUs (real DAVIS
    masks, the official click rule), and the table reports every layout."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_engine_device.py"),
         "--instances", "6", "--max-clicks", "3", "--batch-sizes", "4",
         "--data-root", str(shared / "datasets"), "--call-ms", "1", "--per-instance-ms", "0.1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = table_rows(proc.stdout, "1") + table_rows(proc.stdout, "4")
    assert [(r[0], r[1]) for r in rows] == [("1", "one"), ("4", "one"), ("4", "pipelined")]
    assert all("yes" in r for r in rows), proc.stdout
