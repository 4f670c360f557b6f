"""The batched engine, shards, `bench merge` and torchrun: bit-identical to batch 1 and to the
official trajectories (`golden/protocol`), on the real GrabCut and DAVIS copies."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.engine.instance import PredictionError, check_probability
from bench.engine.shards import Shard, parse_shard
from bench.store import PROTOCOL_COLUMNS, read_trajectories

PLUGINS = Path(__file__).parent / "plugins"
PROBE = f"{PLUGINS / 'batch_probe.py'}:make_predictor"
FAULTY = f"{PLUGINS / 'faulty.py'}:make_predictor"
BENCH = [sys.executable, "-m", "bench"]


def bench(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == expect, result.output + repr(result.exception)
    return result.output


def run_args(data_root: Path, out: Path, model: str, datasets: str, *extra: str) -> list[str]:
    return ["run", "--model", model, "--datasets", datasets, "--data-root", str(data_root),
            "--out", str(out), "--no-progress", *extra]  # fmt: skip


def protocol_frame(run_dir: Path) -> pd.DataFrame:
    return read_trajectories(run_dir)[PROTOCOL_COLUMNS].reset_index(drop=True)


@pytest.fixture(scope="module")
def batch1_davis(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("davis-b1")
    bench(*run_args(data_root, out, PROBE, "davis", "--limit", "60"))
    return out


# The engine's two layouts: one cohort (the synchronous loop), and two pipelined cohorts with
# the per-instance harness work on a thread pool (the GPU layout, exercised here on the CPU).
LAYOUTS = {"one-cohort": (), "pipelined": ("--pipeline", "--harness-threads", "3")}


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", ["GrabCut", "DAVIS"])
def test_batch8_reproduces_official_trajectories(name, layout, golden, data_root, tmp_path):
    """Every instance at batch 8, continuously refilled, against the official clicker's run."""
    log = tmp_path / "calls.txt"
    out = tmp_path / "run"
    bench(*run_args(data_root, out, PROBE, name.lower(), "--batch-size", "8",
                    "--model-option", f"log={log}", *LAYOUTS[layout]))  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    pipelined = layout == "pipelined"
    assert manifest["engine"] == {
        "model_device": "cpu",
        "batch_size": 8,
        "batched_predictor": True,
        "effective_batch_size": 8,
        "harness_threads": 3 if pipelined else min(8, os.cpu_count() or 1),
        "pipeline": pipelined,
    }
    reference = json.loads((golden / "protocol" / f"{name}.json").read_text())
    frame = read_trajectories(out)
    groups = list(frame.groupby("sample_id", sort=False))
    assert len(groups) == reference["num_instances"]
    for (sid, group), inst in zip(groups, reference["instances"]):
        clicks = [[int(r.y), int(r.x), bool(r.positive)] for r in group.itertuples()]
        assert clicks == inst["clicks"], sid
        np.testing.assert_array_equal(group["iou"].to_numpy(), np.float32(inst["ious"]), sid)
    # Continuous batching: full batches until fewer than 8 instances remain to be started,
    # so at most the last 20 steps (one instance's clicks) of each cohort run below 8.
    sizes = [int(v) for v in log.read_text().split()]
    assert sum(sizes) == len(frame)
    assert max(sizes) == 8
    first_short = next(i for i, s in enumerate(sizes) if s < 8)
    if pipelined:  # two cohorts take turns: A, B, A, B, ... and each drains at the tail
        assert len(sizes) - first_short <= 2 * 20
        for cohort in (sizes[first_short::2], sizes[first_short + 1 :: 2]):
            assert cohort[1:] == sorted(cohort[1:], reverse=True)
    else:
        assert len(sizes) - first_short <= 20
        assert sizes[first_short:] == sorted(sizes[first_short:], reverse=True)


def test_pipelined_engine_calls_the_model_from_one_thread(data_root, tmp_path):
    """Pipelined, every predictor call (opens included) comes from the one model thread, so
    a predictor never sees two calls at once; and a failing open loses only its instance."""
    threads = tmp_path / "threads.txt"
    out = tmp_path / "run"
    reference = tmp_path / "b1"
    bench(*run_args(data_root, reference, PROBE, "davis", "--limit", "12"))
    victim = protocol_frame(reference)["sample_id"].iloc[20 * 5]
    bench(*run_args(data_root, out, PROBE, "davis", "--limit", "12", "--batch-size", "4",
                    "--pipeline", "--model-option", f"thread_log={threads}",
                    "--model-option", f"fail_open={victim}"))  # fmt: skip
    names = threads.read_text().split()
    assert len(names) > 12 and set(names) == {"bench-model_0"}
    manifest = json.loads((out / "manifest.json").read_text())
    (error,) = manifest["errors"]
    assert error["sample_id"] == victim and "model start failed" in error["problem"]
    expected = protocol_frame(reference)
    expected = expected[expected["sample_id"] != victim].reset_index(drop=True)
    pd.testing.assert_frame_equal(protocol_frame(out), expected)


@pytest.mark.parametrize("model", ["grabcut-opencv", "random-walker"])
def test_classical_baselines_batch8_equals_batch1(model, data_root, tmp_path):
    """The classical baselines' batched path (a thread pool) gives batch 1's trajectories.

    A subset (4 images of each dataset, 5 clicks: the batch of 8 is full) keeps CI time
    reasonable; the rule is the same for every instance.
    """
    frames = []
    for batch in ("1", "8"):
        out = tmp_path / f"b{batch}"
        bench(*run_args(data_root, out, model, "grabcut,davis", "--limit", "4",
                        "--max-clicks", "5", "--batch-size", batch))  # fmt: skip
        frames.append(protocol_frame(out))
    engine = json.loads((out / "manifest.json").read_text())["engine"]
    assert engine["batched_predictor"] and engine["effective_batch_size"] == 8
    assert len(frames[0]) == 8 * 5
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_batch_size_other_than_one_equals_batch1(batch1_davis, data_root, tmp_path):
    out = tmp_path / "b3"
    bench(*run_args(data_root, out, PROBE, "davis", "--limit", "60", "--batch-size", "3"))
    pd.testing.assert_frame_equal(protocol_frame(batch1_davis), protocol_frame(out))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_failing_instance_in_a_batch_loses_only_itself(layout, batch1_davis, data_root, tmp_path):
    reference = protocol_frame(batch1_davis)
    victim = reference["sample_id"].iloc[20 * 7]
    out = tmp_path / "fail"
    output = bench(*run_args(data_root, out, PROBE, "davis", "--limit", "60", "--batch-size",
                             "8", "--model-option", f"fail_on={victim}",
                             *LAYOUTS[layout]))  # fmt: skip
    assert "probe failure" in output and victim in output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete with 1 error"
    assert [e["sample_id"] for e in manifest["errors"]] == [victim]
    kept = reference[reference["sample_id"] != victim].reset_index(drop=True)
    pd.testing.assert_frame_equal(protocol_frame(out), kept)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_nan_map_is_an_error_of_its_instance(layout, batch1_davis, data_root, tmp_path):
    reference = protocol_frame(batch1_davis)
    victim = reference["sample_id"].iloc[20 * 3]
    out = tmp_path / "nan"
    bench(*run_args(data_root, out, PROBE, "davis", "--limit", "60", "--batch-size", "4",
                    "--model-option", f"nan_on={victim}", *LAYOUTS[layout]))  # fmt: skip
    (error,) = json.loads((out / "manifest.json").read_text())["errors"]
    assert error["sample_id"] == victim and "NaN" in error["problem"]
    assert victim not in set(protocol_frame(out)["sample_id"])


def test_check_probability_accepts_floats_and_bools_and_refuses_the_rest():
    shape = (4, 5)
    assert check_probability(np.full(shape, 0.5, np.float16), shape).dtype == np.float16
    assert check_probability(np.zeros(shape, bool), shape).dtype == bool
    cases = {
        "None": None,
        "list": [[0.5] * 5] * 4,
        "uint8": np.full(shape, 255, np.uint8),
        "(5, 4)": np.zeros((5, 4)),
        "2 NaN and 1 inf": np.array([np.nan, np.nan, np.inf] + [0.0] * 17).reshape(shape),
        "outside [0, 1]": np.full(shape, 3.0),
    }
    for needle, value in cases.items():
        with pytest.raises(PredictionError, match=re.escape(needle)):
            check_probability(value, shape)


def test_shards_are_a_deterministic_partition():
    items = list(range(11))
    parts = [Shard(i, 3).select(items) for i in range(3)]
    assert sorted(i for part in parts for i, _ in part) == items
    assert [i for i, _ in parts[1]] == [1, 4, 7, 10]
    assert parse_shard("2/8") == Shard(2, 8)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_three_shards_merge_into_the_unsharded_run(batch1_davis, data_root, tmp_path):
    dirs = []
    for i in range(3):
        out = tmp_path / f"shard{i}"
        bench(*run_args(data_root, out, PROBE, "davis", "--limit", "60", "--shard", f"{i}/3",
                        "--batch-size", "4"))  # fmt: skip
        dirs.append(out)
    merged = tmp_path / "merged"
    output = bench("merge", *map(str, reversed(dirs)), "--out", str(merged))
    assert "merged 3 shards" in output
    pd.testing.assert_frame_equal(protocol_frame(batch1_davis), protocol_frame(merged))
    manifest = json.loads((merged / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["instances"] == 60
    assert "shard" not in manifest and len(manifest["merged_from"]) == 3
    # bench summary reads the merged folder as an ordinary run.
    assert "davis" in bench("summary", str(merged))

    # Refusals, each naming the folder.
    out = bench("merge", str(dirs[0]), str(dirs[1]), "--out", str(tmp_path / "m2"), expect=1)
    assert "2/3" in out and "missing" in out
    out = bench("merge", str(dirs[0]), str(dirs[0]), str(dirs[2]), "--out",
                str(tmp_path / "m3"), expect=1)  # fmt: skip
    assert "given twice" in out and str(dirs[0]) in out
    other = tmp_path / "other1"
    bench(*run_args(data_root, other, PROBE, "davis", "--limit", "60", "--shard", "1/3",
                    "--max-clicks", "10"))  # fmt: skip
    out = bench("merge", str(dirs[0]), str(other), str(dirs[2]), "--out",
                str(tmp_path / "m4"), expect=1)  # fmt: skip
    assert str(other) in out and "protocol.max_clicks" in out
    manifest_path = dirs[2] / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["status"] = "running"
    manifest_path.write_text(json.dumps(manifest))
    out = bench("merge", *map(str, dirs), "--out", str(tmp_path / "m5"), expect=1)
    assert str(dirs[2]) in out and "not complete" in out


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it), for torchrun's rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _journal_keys(run_dir: Path) -> list[tuple[str, str]]:
    lines = (run_dir / "journal.jsonl").read_text().splitlines()
    return [(json.loads(x)["dataset"], json.loads(x)["ref"]) for x in lines if x.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_sigkill_mid_batch_then_resume_loses_and_duplicates_nothing(
    layout, batch1_davis, data_root, tmp_path
):
    """The kill lands at a known point whatever the load: the faulty plugin (the golden fake,
    unbroken, batched) pauses in its 30th `open_instance` and says so. At most 2 x 8
    instances are in flight, so at least 14 entries are journaled then, and at most 29."""
    out = tmp_path / "killed"
    args = [*BENCH, *run_args(data_root, out, FAULTY, "davis", "--limit", "60", "--batch-size",
                              "8", "--model-option", "batched=true", *LAYOUTS[layout])]  # fmt: skip
    marker = tmp_path / "paused"
    env = {
        **os.environ,
        "ISEG_FAULTS_PAUSE_AT_START": "30",
        "ISEG_FAULTS_PAUSE_MARKER": str(marker),
    }
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 300  # a guard against a hang, not a timing assumption
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the run never reached the pause"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = _journal_keys(out)
    assert 14 <= len(before) <= 29, "the kill must land mid-run"
    assert not (out / "trajectories.parquet").exists()
    subprocess.run(args, check=True, capture_output=True, timeout=300)
    keys = _journal_keys(out)
    assert len(keys) == len(set(keys)) == 60
    assert keys[: len(before)] == before
    pd.testing.assert_frame_equal(protocol_frame(batch1_davis), protocol_frame(out))


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(batch1_davis, data_root, tmp_path):
    """`torchrun --nproc-per-node 2 -m bench run` on CPU (gloo): one merged run directory."""
    out = tmp_path / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = str(free_port())
    args = run_args(data_root, out, PROBE, "davis", "--limit", "60", "--batch-size", "4")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", port, "-m", "bench", *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("run directory:") == 1  # rank 0 prints the merged run
    pd.testing.assert_frame_equal(protocol_frame(batch1_davis), protocol_frame(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["shard"]["index"] for m in manifest["merged_from"]] == [0, 1]
    for i in range(2):
        shard = json.loads((out / "shards" / f"shard-{i}-of-2" / "manifest.json").read_text())
        assert shard["shard"]["index"] == i and shard["status"] == "complete"
    # Re-running the same command resumes every shard (nothing left to do) and re-merges.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    pd.testing.assert_frame_equal(protocol_frame(batch1_davis), protocol_frame(out))
