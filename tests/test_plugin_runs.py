"""A plugin run's identity: the plugin's code is hashed into the manifest (an edited file is
not resumed into the same run), the same file spelled another way is the same model, the
factory is recorded as a stable name, and the default run folder is a plain name."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.adapters import resolve_model
from bench.cli import main as bench_main
from bench.cli.run import default_out

PAINTER = Path(__file__).parent / "plugins" / "disk_painter.py"


def bench_run(model: str, out: Path, *extra: str):
    return CliRunner().invoke(
        bench_main,
        ["run", "--model", model, "--datasets", "demo", "--limit", "2", "--max-clicks", "2",
         "--no-progress", "--out", str(out), *extra],
    )  # fmt: skip


def test_a_plugin_edited_between_sessions_is_not_resumed_into_the_same_run(tmp_path):
    plugin = tmp_path / "plug" / "painter.py"
    plugin.parent.mkdir()
    shutil.copy(PAINTER, plugin)
    out = tmp_path / "run"
    first = bench_run(f"{plugin}:make_predictor", out, "--limit", "1")
    assert first.exit_code == 0, first.output
    manifest = json.loads((out / "manifest.json").read_text())
    model = manifest["model"]
    assert model["plugin_file"] == str(plugin.resolve()) and len(model["plugin_sha256"]) == 64
    assert model["factory"] == f"{plugin.resolve()}:make_predictor"
    assert "0x" not in json.dumps(model)
    # The same file spelled relative to the working directory resumes the same run.
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        again = bench_run("./plug/../plug/painter.py:make_predictor", out, "--limit", "1")
    finally:
        os.chdir(cwd)
    assert again.exit_code == 0, again.output
    plugin.write_text(plugin.read_text().replace("radius: int = 20", "radius: int = 5"))
    edited = bench_run(f"{plugin}:make_predictor", out, "--limit", "1")
    assert edited.exit_code == 1
    assert "model.plugin_sha256" in edited.output and "other settings" in edited.output


def test_the_module_of_a_module_plugin_is_hashed_too(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PAINTER.parent))
    result = bench_run("disk_painter:make_predictor", tmp_path / "run", "--limit", "1")
    assert result.exit_code == 0, result.output
    model = json.loads((tmp_path / "run" / "manifest.json").read_text())["model"]
    assert model["plugin_file"] == str(PAINTER)
    assert model["factory"] == "disk_painter:make_predictor"
    builtin = bench_run("grabcut-opencv", tmp_path / "gc", "--limit", "1", "--max-clicks", "1")
    assert builtin.exit_code == 0, builtin.output
    model = json.loads((tmp_path / "gc" / "manifest.json").read_text())["model"]
    assert model["plugin_sha256"] is None and ":" in model["factory"]


@pytest.mark.parametrize(
    ("model", "folder"),
    [
        ("../plug/x.py:f", "runs/x_f"),
        ("/abs/.hidden/my plugin.py:make", "runs/my_plugin_make"),
        ("my_pkg.methods:make", "runs/my_pkg.methods_make"),
        ("grabcut-opencv", "runs/grabcut-opencv"),
    ],
)
def test_the_default_run_folder_is_a_plain_name(model, folder):
    assert default_out(model) == Path(folder)


def test_a_model_with_two_colons_says_what_is_expected(tmp_path):
    (tmp_path / "x.py").write_text("def f():\n    pass\n")
    with pytest.raises(ValueError, match="expected FILE.py:FACTORY with one colon"):
        resolve_model(f"{tmp_path}/x.py:f:extra")
    result = CliRunner().invoke(
        bench_main, ["run", "--model", f"{tmp_path}/x.py:f:extra", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 1 and "one colon" in result.output
    assert not (tmp_path / "r").exists()


FAULTY = Path(__file__).parent / "plugins" / "faulty.py"


def test_a_plugin_exception_names_its_click_and_traceback_shows_where(tmp_path, caplog):
    model = f"{FAULTY}:make_predictor"
    options = ("--model-option", "fault=raise", "--model-option", "target=*",
               "--model-option", "at_click=2", "--limit", "1")  # fmt: skip
    plain = bench_run(model, tmp_path / "plain", *options)
    assert plain.exit_code == 1
    assert "model failed at click 2: RuntimeError: predict failed on purpose" in plain.output
    assert "Traceback" not in plain.output and "bench run --traceback" in plain.output
    assert "Traceback" not in caplog.text
    traced = bench_run(model, tmp_path / "traced", *options, "--traceback")
    assert traced.exit_code == 1 and "bench run --traceback" not in traced.output
    assert "Traceback (most recent call last)" in caplog.text  # logged as it happens
    assert 'faulty.py", line' in caplog.text and "in _break" in caplog.text
    (error,) = json.loads((tmp_path / "traced" / "manifest.json").read_text())["errors"]
    assert "in _break" in error["traceback"] and "at click 2" in error["problem"]


def test_save_masks_on_a_resume_is_refused_or_kept_never_silently_partial(tmp_path):
    painter = f"{PAINTER}:make_predictor"
    plain = tmp_path / "plain"
    assert bench_run(painter, plain).exit_code == 0
    late = bench_run(painter, plain, "--save-masks")
    assert late.exit_code == 1 and "--save-masks" in late.output and "--overwrite" in late.output
    assert not (plain / "masks").exists()
    # A run started with masks keeps them for the entries a resume evaluates.
    masked = tmp_path / "masked"
    assert bench_run(painter, masked, "--save-masks").exit_code == 0
    journal = masked / "journal.jsonl"
    first, second = journal.read_text().splitlines()
    journal.write_text(first + "\n")  # as if interrupted after the first entry
    removed = json.loads(second)["instances"][0]["sample_id"]
    (masked / "masks" / "demo" / f"{removed}.npz").unlink()
    resumed = bench_run(painter, masked)  # without --save-masks
    assert resumed.exit_code == 0, resumed.output
    assert (masked / "masks" / "demo" / f"{removed}.npz").is_file()
    assert json.loads((masked / "manifest.json").read_text())["save_masks"] is True


ON_DEVICE = """
import sys
sys.path.insert(0, {plugins!r})
from disk_painter import DiskPainter


class OnDevice(DiskPainter):
    def __init__(self, device="cuda:0", **options):
        super().__init__(**options)
        self.device = device  # where a deep factory put its network, whatever --device said


def make(**options):
    return OnDevice(**options)
"""


def test_pipelining_follows_the_device_the_model_is_on_not_the_option(tmp_path):
    plugin = tmp_path / "on_device.py"
    plugin.write_text(ON_DEVICE.format(plugins=str(PAINTER.parent)))
    chosen = bench_run(f"{plugin}:make", tmp_path / "cuda", "--batch-size", "2")
    assert chosen.exit_code == 0, chosen.output
    engine = json.loads((tmp_path / "cuda" / "manifest.json").read_text())["engine"]
    assert engine["model_device"] == "cuda:0" and engine["pipeline"] is True
    told = bench_run(f"{plugin}:make", tmp_path / "cpu", "--batch-size", "2", "--device", "cpu")
    assert told.exit_code == 0, told.output
    engine = json.loads((tmp_path / "cpu" / "manifest.json").read_text())["engine"]
    assert engine["model_device"] == "cpu" and engine["pipeline"] is False
