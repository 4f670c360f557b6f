"""Fault injection: every way a run, a model or an input can break, one test each.

Each test breaks one thing and asserts two facts: the message names the file or the instance
(and says what is wrong), and every other result is kept, compared with a clean run of the
same predictor. The predictor is `plugins/faulty.py`, the golden shifted-reveal fake with one
chosen fault, so every instance it does not break has the clean run's exact trajectory.
Data: the first 5 real GrabCut images, 6 clicks each.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
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
from bench.store import JOURNAL, MANIFEST, PROTOCOL_COLUMNS, TRAJECTORIES, ResultStore

PLUGINS = Path(__file__).parent / "plugins"
FAULTY = f"{PLUGINS / 'faulty.py'}:make_predictor"
BENCH = [sys.executable, "-m", "bench.cli"]
LIMIT, CLICKS = 5, 6


def run_args(data_root: Path, out: Path, *options: str) -> list[str]:
    """`bench run` of the faulty plugin; `options` are its --model-option values."""
    args = ["run", "--model", FAULTY, "--datasets", "grabcut", "--data-root", str(data_root)]
    args += ["--out", str(out), "--limit", str(LIMIT), "--max-clicks", str(CLICKS)]
    args += ["--no-progress"]
    for option in options:
        args += ["--model-option", option]
    return args


def invoke(args: list[str]):
    return CliRunner().invoke(main, args)


def strict_json(path: Path) -> dict:
    """A parse that refuses NaN/Infinity, as every non-Python JSON reader does."""

    def refuse(name: str):
        raise ValueError(f"{path}: bare {name} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def protocol_rows(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / TRAJECTORIES)[PROTOCOL_COLUMNS]


def assert_no_duplicates(out: Path) -> None:
    frame = pd.read_parquet(out / TRAJECTORIES)
    assert not frame.duplicated(["dataset", "sample_id", "click"]).any()
    refs = [json.loads(line)["ref"] for line in (out / JOURNAL).read_text().splitlines()]
    assert len(refs) == len(set(refs)) == LIMIT


@pytest.fixture(scope="module")
def clean(data_root: Path, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("clean") / "run"
    result = invoke(run_args(data_root, out))
    assert result.exit_code == 0, result.output
    frame = protocol_rows(out)
    assert frame["sample_id"].nunique() == LIMIT and len(frame) == LIMIT * CLICKS
    return frame


@pytest.fixture(scope="module")
def target(clean: pd.DataFrame) -> str:
    """The instance each predictor fault breaks: the third of five."""
    return list(dict.fromkeys(clean["sample_id"]))[2]


def without(frame: pd.DataFrame, sample_id: str) -> pd.DataFrame:
    return frame[frame["sample_id"] != sample_id].reset_index(drop=True)


# --- predictor outputs ------------------------------------------------------------------

# (fault, at_click, what the error says); h x w is the target image's size.
REFUSED = [
    ("nan", 3, "{hw} NaN and 0 inf pixel(s) of {hw}"),
    ("nan_some", 1, "1 NaN and 0 inf pixel(s) of {hw}"),
    ("inf", 1, "0 NaN and {hw} inf pixel(s)"),
    ("-inf", 2, "0 NaN and {hw} inf pixel(s)"),
    ("shape", 1, "returned a ({h1}, {w}) map for a ({h}, {w}) image"),
    ("uint8", 1, "returned a uint8 map; return float probabilities in [0, 1] or a bool mask"),
    ("range", 1, "outside [0, 1]; return probabilities (apply the sigmoid to logits)"),
    ("none_return", 1, "predict() returned None"),
    ("list", 1, "predict() returned a list; expected an H x W numpy float array"),
    ("raise", 2, "model failed at click 2: RuntimeError: predict failed on purpose"),
    ("start_raise", 1, "model start failed: RuntimeError: start failed on purpose"),
]


@pytest.mark.parametrize("batched", ["false", "true"])
@pytest.mark.parametrize(("fault", "at_click", "expected"), REFUSED, ids=[f for f, _, _ in REFUSED])
def test_bad_predictor_output_fails_its_instance_only(
    fault, at_click, expected, batched, clean, target, data_root, tmp_path
):
    out = tmp_path / "run"
    options = [f"fault={fault}", f"target={target}", f"at_click={at_click}", f"batched={batched}"]
    result = invoke([*run_args(data_root, out, *options), "--batch-size", "3"])
    assert result.exit_code == 0, result.output  # the other instances were evaluated

    manifest = strict_json(out / MANIFEST)
    assert manifest["status"] == "complete with 1 error"
    (error,) = manifest["errors"]
    image = next((data_root / "GrabCut" / "data_GT").glob(f"{target}.*"))
    h, w = __import__("cv2").imread(str(image)).shape[:2]
    assert error["sample_id"] == target and error["path"] == str(image)
    assert error["problem"].startswith(f"{target}: ")
    assert expected.format(hw=h * w, h=h, w=w, h1=h - 1) in error["problem"]
    # The CLI says it too, with the file.
    assert f"{image}: {target}: " in result.output and "1 sample(s) skipped" in result.output
    # A refused instance leaves no partial trajectory; the other four are the clean run's.
    pd.testing.assert_frame_equal(protocol_rows(out), without(clean, target))


def test_bool_mask_is_accepted_like_its_probabilities(clean, target, data_root, tmp_path):
    out = tmp_path / "run"
    result = invoke(run_args(data_root, out, "fault=bool", "target=*"))
    assert result.exit_code == 0, result.output
    assert strict_json(out / MANIFEST)["status"] == "complete"
    pd.testing.assert_frame_equal(protocol_rows(out), clean)


def test_every_instance_failing_is_a_failed_run_with_exit_1(data_root, tmp_path):
    out = tmp_path / "run"
    result = invoke(run_args(data_root, out, "fault=nan", "target=*"))
    assert result.exit_code == 1, result.output
    assert f"run failed: none of the {LIMIT} evaluated sample(s) gave a result" in result.output
    manifest = strict_json(out / MANIFEST)
    assert manifest["status"] == "failed" and len(manifest["errors"]) == LIMIT
    assert all("NaN" in e["problem"] for e in manifest["errors"])


def test_option_values_stay_as_typed_and_the_manifest_is_strict_json(data_root, tmp_path):
    out = tmp_path / "run"
    result = invoke(run_args(data_root, out, "fault=nan", "target=none", "at_click=3"))
    assert result.exit_code == 0, result.output
    options = strict_json(out / MANIFEST)["model"]["options"]
    # "nan" and "none" reach the factory as the strings typed; "3" as the int it reads as.
    assert options == {"fault": "nan", "target": "none", "at_click": 3}


# --- run directory: kill, interrupt, lock, corrupt journal ------------------------------


def _start_paused(args: list[str], marker: Path, *, at_start: int | None = None, point=None):
    """A `bench run` subprocess that pauses at a known point (marker file written)."""
    env = dict(os.environ)
    if at_start is not None:
        cmd = [*BENCH, *args]
        env["ISEG_FAULTS_PAUSE_AT_START"] = str(at_start)
        env["ISEG_FAULTS_PAUSE_MARKER"] = str(marker)
    else:
        cmd = [sys.executable, str(PLUGINS / "pausing_bench.py"), point, str(marker), *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before the pause: {proc.communicate()}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError("the run never reached the pause point")
        time.sleep(0.05)
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def _resume_and_compare(args: list[str], out: Path, clean: pd.DataFrame) -> dict:
    result = invoke(args)
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(protocol_rows(out), clean)
    assert_no_duplicates(out)
    manifest = strict_json(out / MANIFEST)
    assert manifest["status"] == "complete" and manifest["resumed"] == 1
    return manifest


@pytest.mark.slow
def test_sigkill_before_the_first_journal_line(clean, data_root, tmp_path):
    out = tmp_path / "run"
    args = run_args(data_root, out)
    _kill(_start_paused(args, tmp_path / "paused", at_start=1))
    assert strict_json(out / MANIFEST)["status"] == "running"  # never claimed complete
    assert not (out / JOURNAL).exists() or (out / JOURNAL).read_bytes() == b""
    assert not (out / TRAJECTORIES).exists()
    _resume_and_compare(args, out, clean)


@pytest.mark.slow
def test_sigkill_mid_journal_line(clean, data_root, tmp_path):
    """Killed while entry 3 is being journaled. One small write() is not interruptible from
    user space, so the torn line the kernel could leave is made by cutting the line in half
    after the kill, exactly where a crash mid-write would leave it."""
    out = tmp_path / "run"
    args = run_args(data_root, out)
    _kill(_start_paused(args, tmp_path / "paused", at_start=4))  # entries 1-3 journaled
    journal = out / JOURNAL
    lines = journal.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    journal.write_bytes(b"".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    _resume_and_compare(args, out, clean)


@pytest.mark.slow
def test_sigkill_while_trajectories_parquet_is_written(clean, data_root, tmp_path):
    out = tmp_path / "run"
    args = run_args(data_root, out)
    _kill(_start_paused(args, tmp_path / "paused", point="parquet"))
    assert not (out / TRAJECTORIES).exists()  # only the half-written temporary file
    assert (out / f"{TRAJECTORIES}.tmp").exists()
    assert strict_json(out / MANIFEST)["status"] == "running"
    assert len((out / JOURNAL).read_text().splitlines()) == LIMIT
    _resume_and_compare(args, out, clean)
    assert not (out / f"{TRAJECTORIES}.tmp").exists()


@pytest.mark.slow
def test_sigkill_after_the_last_entry_before_the_manifest_says_complete(clean, data_root, tmp_path):
    out = tmp_path / "run"
    args = run_args(data_root, out)
    _kill(_start_paused(args, tmp_path / "paused", point="final_manifest"))
    assert strict_json(out / MANIFEST)["status"] == "running"
    pd.testing.assert_frame_equal(protocol_rows(out), clean)  # written, but not claimed
    _resume_and_compare(args, out, clean)


@pytest.mark.slow
def test_sigint_gives_a_clean_message_and_a_resumable_run(clean, data_root, tmp_path):
    out = tmp_path / "run"
    args = run_args(data_root, out)
    proc = _start_paused(args, tmp_path / "paused", at_start=3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    message = stderr.decode()
    assert f"interrupted; {out} keeps every finished entry: run the same command to resume" in (
        message
    )
    assert "Traceback" not in message
    assert strict_json(out / MANIFEST)["status"] == "interrupted"
    assert len((out / JOURNAL).read_text().splitlines()) == 2
    _resume_and_compare(args, out, clean)


@pytest.mark.slow
def test_second_run_on_the_same_out_is_refused_by_the_lock(clean, data_root, tmp_path):
    out = tmp_path / "run"
    args = run_args(data_root, out)
    first = _start_paused(args, tmp_path / "paused", at_start=2)
    try:
        before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        second = invoke(args)
        assert second.exit_code == 1
        assert f"{out} is being written by another bench run (pid {first.pid}" in second.output
        after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        assert after == before  # the refused run touched nothing
    finally:
        _kill(first)
    _resume_and_compare(args, out, clean)


def test_a_refused_second_run_leaves_the_first_runs_journal_alone(clean, data_root, tmp_path):
    """The lock is taken before anything in the folder is read-and-repaired: a line the
    first run is still writing (no newline yet) must not be cut by a second process."""
    out = tmp_path / "run"
    args = run_args(data_root, out)
    assert invoke(args).exit_code == 0
    journal = out / JOURNAL
    lines = journal.read_bytes().splitlines(keepends=True)
    holder = ResultStore(out)
    holder.lock()
    in_flight = b"".join(lines[:-1]) + lines[-1][:20]  # the holder is mid-write
    journal.write_bytes(in_flight)
    try:
        refused = invoke(args)
        assert refused.exit_code == 1 and "being written by another bench run" in refused.output
        assert journal.read_bytes() == in_flight
    finally:
        holder.unlock()


def test_corrupt_journal_line_in_the_middle_is_named_and_nothing_is_lost(
    clean, data_root, tmp_path
):
    out = tmp_path / "run"
    args = run_args(data_root, out)
    assert invoke(args).exit_code == 0
    journal = out / JOURNAL
    lines = journal.read_bytes().splitlines(keepends=True)
    damaged = lines[0] + b'{"dataset": "grabcut", "ref": \x00garbage\n' + b"".join(lines[2:])
    journal.write_bytes(damaged)
    (out / TRAJECTORIES).unlink()

    expected = f"{journal}: line 2 is corrupt; remove that line to re-evaluate its entry"
    for command in (args, ["summary", str(out)]):
        result = invoke(command)
        assert result.exit_code == 1, result.output
        assert expected in result.output and "Traceback" not in result.output
        assert journal.read_bytes() == damaged  # nothing is guessed or dropped
    report = invoke(["report", str(out), "-o", str(tmp_path / "r.html")])
    assert report.exit_code != 0 and expected in report.output

    # Following the advice re-evaluates exactly that entry.
    journal.write_bytes(lines[0] + b"".join(lines[2:]))
    assert invoke(args).exit_code == 0
    pd.testing.assert_frame_equal(protocol_rows(out), clean)
    assert_no_duplicates(out)


# --- disk full, read-only, failed start ------------------------------------------------


def _no_space(path: object) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_disk_full_while_journaling_then_resume(clean, data_root, tmp_path, monkeypatch):
    """The third journal write fails half-way (ENOSPC): clear error, nothing claimed complete;
    once space is back, the same command resumes to the clean result."""
    out = tmp_path / "run"
    args = run_args(data_root, out)
    real_append = ResultStore.append
    calls = []

    def full_disk(self, entry):
        calls.append(entry.ref_id)
        if len(calls) == 3:
            line = json.dumps(entry.to_json()).encode()
            with self.journal_path.open("ab") as fh:
                fh.write(line[: len(line) // 2])  # what fit on the disk
            raise _no_space(self.journal_path)
        real_append(self, entry)

    monkeypatch.setattr(ResultStore, "append", full_disk)
    result = invoke(args)
    assert result.exit_code == 1
    assert f"cannot write the run directory {out}: [Errno 28] No space left on device" in (
        result.output
    )
    assert str(out / JOURNAL) in result.output
    manifest = strict_json(out / MANIFEST)
    assert manifest["status"] == "interrupted"  # resumable, never "complete"
    assert "No space left on device" in manifest["stopped_by"]
    assert not (out / TRAJECTORIES).exists()

    monkeypatch.setattr(ResultStore, "append", real_append)
    _resume_and_compare(args, out, clean)


def test_disk_full_while_writing_trajectories(clean, data_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = run_args(data_root, out)
    real_to_parquet = pd.DataFrame.to_parquet

    def full_disk(self, path, *a, **k):
        Path(path).write_bytes(b"PAR1")  # a start, then the disk is full
        raise _no_space(path)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    result = invoke(args)
    assert result.exit_code == 1
    assert f"cannot write the run directory {out}: [Errno 28] No space left on device" in (
        result.output
    )
    assert not (out / TRAJECTORIES).exists()
    manifest = strict_json(out / MANIFEST)
    assert manifest["status"] == "interrupted"
    assert "No space left on device" in manifest["stopped_by"]

    monkeypatch.setattr(pd.DataFrame, "to_parquet", real_to_parquet)
    _resume_and_compare(args, out, clean)


def test_read_only_out_dir_is_a_clear_error(data_root, tmp_path, monkeypatch):
    """Permission bits do not stop root (tests may run as root), so the read-only file
    system is simulated at the one call that creates the run folder."""
    out = tmp_path / "ro" / "run"
    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    result = invoke(run_args(data_root, out))
    assert result.exit_code == 1
    assert f"cannot write the run directory {out}: [Errno 30] Read-only file system" in (
        result.output
    )
    assert "Traceback" not in result.output and not out.exists()


def test_failed_start_leaves_no_folder(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--model", FAULTY, "--datasets", "grabcut", "--data-root"]
    result = invoke([*args, str(tmp_path / "no-such-root"), "--out", str(out), "--no-progress"])
    assert result.exit_code == 1
    assert f"{tmp_path / 'no-such-root' / 'GrabCut'} does not exist" in result.output
    assert not out.exists()


# --- checkpoints -------------------------------------------------------------------------


class _Payload:
    """What a malicious checkpoint pickles: unpickling it would create `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _checkpoint_run(checkpoint: Path, out: Path) -> tuple:
    args = ["run", "--model", "ritm-hrnet18s", "--checkpoint", str(checkpoint), "--datasets"]
    return invoke([*args, "demo", "--out", str(out), "--no-progress", "--limit", "1"])


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("empty", "not a readable torch checkpoint"),
        ("text", "not a readable torch checkpoint"),
        ("other_family", "this is a checkpoint of isegm.model.is_plainvit_model.PlainVitModel"),
        ("reduce_payload", "refused: the checkpoint's pickle needs posix.mkdir"),
        ("reduce_in_torch_save", "refused: the checkpoint's pickle needs posix.mkdir"),
    ],
)
def test_bad_checkpoints_are_refused_with_the_file_and_why(kind, expected, golden, tmp_path):
    path = tmp_path / f"{kind}.pth"
    marker = tmp_path / "payload-ran"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a checkpoint\n")
    elif kind == "other_family":
        path = golden / "equivalence" / "simpleclick_vit_xtiny448_random.pth"
    elif kind == "reduce_payload":
        with path.open("wb") as fh:
            pickle.dump({"state_dict": _Payload(marker)}, fh, protocol=4)
    else:
        import torch

        torch.save({"state_dict": {}, "config": _Payload(marker)}, path)
    out = tmp_path / "run"
    result = _checkpoint_run(path, out)
    assert result.exit_code == 1, result.output
    assert f"Error: {path}: " in result.output and expected in result.output
    assert "Traceback" not in result.output
    if kind.startswith("reduce"):
        assert "--trust-checkpoint" in result.output and "nothing in the file was executed" in (
            result.output
        )
        assert not result.output.strip().endswith("Unsupported operand 149")
    assert not marker.exists()  # the payload never ran
    assert not out.exists()  # a failed start leaves no folder


# --- summary and report on folders that are not finished runs -------------------------


def test_summary_and_report_on_an_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    summary = invoke(["summary", str(empty)])
    assert summary.exit_code == 1 and "Traceback" not in summary.output
    assert f"{empty}: no {TRAJECTORIES} or {JOURNAL}; is this a run directory?" in summary.output
    report = invoke(["report", str(empty), "-o", str(tmp_path / "r.html")])
    assert report.exit_code == 2
    assert f"no run folder (a folder with manifest.json written by `bench run`) in {empty}" in (
        report.output
    )
    assert f"{empty}: no manifest.json, and no run folder inside; skipped" in report.output
    assert not (tmp_path / "r.html").exists()


def test_summary_and_report_on_a_corrupt_manifest(clean, data_root, tmp_path):
    out = tmp_path / "run"
    assert invoke(run_args(data_root, out)).exit_code == 0
    (out / MANIFEST).write_text('{"status": "complete", "model": ')
    for command in (["summary", str(out)], ["report", str(out), "-o", str(tmp_path / "r.html")]):
        result = invoke(command)
        assert result.exit_code != 0, result.output
        assert f"{out / MANIFEST}: not valid JSON" in result.output
        assert "Traceback" not in result.output


def test_summary_and_report_on_a_run_in_progress(clean, target, data_root, tmp_path):
    out = tmp_path / "run"
    args = run_args(data_root, out)
    assert invoke(args).exit_code == 0
    manifest = strict_json(out / MANIFEST)
    manifest["status"] = "running"
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / TRAJECTORIES).unlink()
    journal = out / JOURNAL
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:3]) + lines[3][:30])  # entry 4 being written

    summary = invoke(["summary", str(out)])
    assert summary.exit_code == 0, summary.output
    assert "run status is 'running'" in summary.output  # the numbers are partial, and said so
    table = pd.read_csv(out / "summary.csv", index_col=0)
    assert table.loc["grabcut", "instances"] == 3
    assert journal.read_bytes().endswith(lines[3][:30])  # a reader never cuts the writer's line

    report = invoke(["report", str(out), "-o", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    csv = pd.read_csv(tmp_path / "r-table2-noc.csv")
    assert (csv["instances"] == 3).all() and csv["flags"].str.contains("'running'").all()
    finished = clean[clean["sample_id"].isin(list(dict.fromkeys(clean["sample_id"]))[:3])]
    noc90 = csv.loc[csv["metric"] == "NoC@90", "value"].item()
    hits = finished.groupby("sample_id")["iou"].apply(
        lambda ious: next((i + 1 for i, v in enumerate(ious) if v >= np.float32(0.9)), CLICKS)
    )
    assert noc90 == pytest.approx(hits.mean())  # the three finished entries, nothing else
