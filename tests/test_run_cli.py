"""`bench run` end to end: the README demo, determinism, kill-and-resume, bad samples."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.store import PROTOCOL_COLUMNS, read_trajectories

PLUGIN = f"{Path(__file__).parent / 'plugins' / 'shifted_reveal.py'}:make_predictor"
BENCH = [sys.executable, "-m", "bench.cli"]


def plugin_run(data_root: Path, out: Path, *extra: str, dataset: str = "grabcut") -> tuple:
    """Arguments of `bench run` with the golden fake predictor on one real dataset."""
    return ("run", "--model", PLUGIN, "--datasets", dataset, "--data-root", str(data_root),
            "--out", str(out), *extra)  # fmt: skip


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--no-progress"] if args[0] == "run" else list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.mark.slow
def test_readme_demo_command_prints_a_table(tmp_path):
    """The README's first command, as a user runs it (real subprocess, bundled demo set)."""
    out = tmp_path / "demo"
    proc = subprocess.run(
        [*BENCH, "run", "--model", "grabcut-opencv", "--datasets", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "NoC@85" in proc.stdout and "NoC@90" in proc.stdout and "demo" in proc.stdout
    frame = read_trajectories(out)
    assert frame.groupby("sample_id").ngroups == 4
    assert (frame.groupby("sample_id").size() == 20).all()
    # The clicks are used: IoU after 20 clicks beats IoU after the first on average.
    by_click = frame.groupby("click")["iou"].mean()
    assert by_click[20] > by_click[1] + 0.05
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["model"]["name"] == "grabcut-opencv"
    assert manifest["model"]["describe"]["radius_px"] == 5
    assert manifest["protocol"]["pred_thr"] == 0.49
    assert manifest["datasets"]["demo"]["fingerprint"]


def test_identical_across_runs_and_thread_counts(tmp_path, data_root):
    frames = []
    for i, threads in enumerate(("1", "2", "2")):
        out = tmp_path / f"r{i}"
        invoke(*plugin_run(data_root, out, "--threads", threads, "--limit", "15"))
        frames.append(read_trajectories(out)[PROTOCOL_COLUMNS])
    assert len(frames[0]) == 15 * 20
    pd.testing.assert_frame_equal(frames[0], frames[1])
    pd.testing.assert_frame_equal(frames[1], frames[2])


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(tmp_path, data_root):
    full, killed = tmp_path / "full", tmp_path / "killed"
    invoke(*plugin_run(data_root, full, "--limit", "50", dataset="davis"))
    cmd = [
        *BENCH,
        *plugin_run(data_root, killed, "--limit", "50", "--no-progress", dataset="davis"),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = killed / "journal.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if journal.exists() and journal.read_bytes().count(b"\n") >= 10:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lines = journal.read_bytes().count(b"\n")
    assert 10 <= lines < 50, "the run must be killed mid-dataset"
    assert not (killed / "trajectories.parquet").exists()

    subprocess.run(cmd, check=True, timeout=300, capture_output=True)
    resumed = pd.read_parquet(killed / "trajectories.parquet")
    reference = pd.read_parquet(full / "trajectories.parquet")
    pd.testing.assert_frame_equal(resumed[PROTOCOL_COLUMNS], reference[PROTOCOL_COLUMNS])
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"] == 1


def test_torn_journal_line_is_discarded(tmp_path, data_root):
    out = tmp_path / "run"
    args = plugin_run(data_root, out, "--limit", "4")
    invoke(*args)
    reference = read_trajectories(out)[PROTOCOL_COLUMNS]
    journal = out / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:2]) + lines[2][:25])  # crash mid-write of entry 3
    (out / "trajectories.parquet").unlink()
    invoke(*args)
    pd.testing.assert_frame_equal(read_trajectories(out)[PROTOCOL_COLUMNS], reference)


def test_resume_with_other_settings_is_refused(tmp_path, data_root):
    out = tmp_path / "run"
    invoke(*plugin_run(data_root, out, "--limit", "2"))
    result = CliRunner().invoke(
        main, [*plugin_run(data_root, out, "--limit", "3", "--no-progress")]
    )
    assert result.exit_code != 0
    assert "other settings" in result.output


def test_malformed_samples_are_reported_and_others_kept(tmp_path, data_root, caplog):
    root = tmp_path / "data" / "GrabCut"
    src = data_root / "GrabCut"
    names = ["106024", "124080", "153077", "153093", "181079"]
    for sub in ("data_GT", "boundary_GT"):
        (root / sub).mkdir(parents=True)
    for name in names:
        image = next((src / "data_GT").glob(f"{name}.*"))
        shutil.copy(image, root / "data_GT" / image.name)
        shutil.copy(src / "boundary_GT" / f"{name}.bmp", root / "boundary_GT" / f"{name}.bmp")
    truncated = root / "data_GT" / "124080.jpg"
    truncated.write_bytes(truncated.read_bytes()[:5000])
    import cv2

    small = np.zeros((10, 10, 3), np.uint8)
    small[3:6, 3:6] = 255
    cv2.imwrite(str(root / "boundary_GT" / "153077.bmp"), small)
    cv2.imwrite(str(root / "boundary_GT" / "153093.bmp"), np.zeros((321, 481, 3), np.uint8))

    out = tmp_path / "run"
    output = invoke(*plugin_run(tmp_path / "data", out))
    manifest = json.loads((out / "manifest.json").read_text())
    problems = {Path(e["path"]).name: e["problem"] for e in manifest["errors"]}
    assert set(problems) == {"124080.jpg", "153077.bmp", "153093.bmp"}
    assert "truncated" in problems["124080.jpg"]
    assert "10x10" in problems["153077.bmp"]
    assert "no object pixels" in problems["153093.bmp"]
    assert manifest["skipped"] == 3
    assert "3 sample(s) skipped" in output
    frame = read_trajectories(out)
    assert list(frame["sample_id"].unique()) == ["106024", "181079"]


def test_model_resolution_errors_are_clear(tmp_path):
    result = CliRunner().invoke(main, ["run", "--model", "no-such-model", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "unknown model 'no-such-model'" in result.output
    assert "grabcut-opencv" in result.output


def test_module_factory_and_early_stop(tmp_path, data_root, monkeypatch):
    """`package.module:factory` resolution, and the official early stop as an option."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    out = tmp_path / "run"
    invoke(
        "run",
        "--model",
        "shifted_reveal:make_predictor",
        "--datasets",
        "grabcut",
        "--data-root",
        str(data_root),
        "--out",
        str(out),
        "--limit",
        "6",
        "--stop-at-iou",
        "0.9",
    )
    frame = read_trajectories(out)
    for _, group in frame.groupby("sample_id"):
        ious = group["iou"].to_numpy()
        hits = np.flatnonzero(ious.astype(np.float64) >= 0.9)
        # stops at the first float64 IoU >= 0.9, or runs all 20 clicks
        assert len(ious) == (hits[0] + 1 if hits.size else 20)
