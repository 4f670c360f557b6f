"""`bench datasets verify` says what `bench run` will do with each file.

Errors: the run skips or fails the entry. Warnings: the official rule accepts the file, so the
run evaluates it, and its samples carry the very text verify prints (`Sample.warnings`).
Fixtures are copies of real GrabCut files with one defect each.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bench.cli import main as bench_main
from bench.cli.datasets import datasets as datasets_cli
from bench.datasets import list_samples
from bench.sample import SampleError

MASK = "106024"  # a GrabCut image whose mask has an ignore band


@pytest.fixture
def grabcut_copy(data_root: Path, tmp_path: Path) -> Path:
    shutil.copytree(data_root / "GrabCut", tmp_path / "GrabCut", copy_function=shutil.copyfile)
    return tmp_path


def _verify(root: Path, *extra: str):
    args = ["verify", "--data-root", str(root), "--datasets", "grabcut", *extra]
    return CliRunner().invoke(datasets_cli, args)


def _lines(output: str, kind: str) -> list[str]:
    return [
        line[len(f"  {kind} ") :] for line in output.splitlines() if line.startswith(f"  {kind} ")
    ]


def _resave_with_noise(path: Path) -> tuple[int, int]:
    """Values a lossy re-save leaves: 240 in the object, 3 in the background, every 7th pixel.

    The official threshold maps them back to the same object and background, so the decoded
    masks (and the copy's annotation fingerprint) are unchanged. Returns (object, background)
    counts of the changed pixels.
    """
    mask = cv2.imread(str(path))
    raw = mask[:, :, 0]
    every_7th = (np.arange(raw.size).reshape(raw.shape) % 7) == 0
    to_object, to_background = every_7th & (raw == 255), every_7th & (raw == 0)
    mask[to_object] = 240
    mask[to_background] = 3
    assert cv2.imwrite(str(path), mask)
    return int(to_object.sum()), int(to_background.sum())


def test_resaved_mask_is_a_warning_with_the_threshold_counts(grabcut_copy: Path):
    mask_path = grabcut_copy / "GrabCut" / "boundary_GT" / f"{MASK}.bmp"
    to_object, to_background = _resave_with_noise(mask_path)
    assert to_object > 0 and to_background > 0

    result = _verify(grabcut_copy)
    assert result.exit_code == 0, result.output  # accepted by the official rule: no error
    assert _lines(result.output, "ERROR") == []
    assert _lines(result.output, "WARN") == [
        f"{mask_path}: {to_object + to_background} mask pixel(s) with values other than "
        f"0/128/255 (3, 240); accepted by the official threshold, which maps {to_object} to "
        f"object (> 128, or 1) and {to_background} to background"
    ]
    assert "OK, 1 warning(s)" in result.output
    assert "sound, with 1 warning(s) the official rule accepts" in result.output

    strict = _verify(grabcut_copy, "--strict")  # today's behaviour, on request
    assert strict.exit_code == 1 and "errors or warnings (--strict)" in strict.output

    # bench run evaluates the entry and carries the very same text.
    (ref,) = [r for r in list_samples("grabcut", grabcut_copy) if r.id == MASK]
    (sample,) = ref.load()
    assert sample.warnings == tuple(_lines(result.output, "WARN"))


def test_bench_run_records_the_warning_verify_prints(grabcut_copy: Path, tmp_path: Path, caplog):
    mask_path = grabcut_copy / "GrabCut" / "boundary_GT" / f"{MASK}.bmp"
    _resave_with_noise(mask_path)
    (warning,) = _lines(_verify(grabcut_copy).output, "WARN")
    out = tmp_path / "run"
    args = ["run", "--model", "grabcut-opencv", "--datasets", "grabcut", "--data-root"]
    args += [str(grabcut_copy), "--limit", "1", "--max-clicks", "2", "--out", str(out)]
    with caplog.at_level(logging.WARNING, logger="bench"):
        result = CliRunner().invoke(bench_main, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"  # evaluated, as the official loader does
    (recorded,) = manifest["warnings"]
    assert recorded["sample_id"] == MASK
    assert f"{recorded['path']}: {recorded['problem']}" == warning
    assert any(warning in message for message in caplog.messages)


def test_blurred_mask_changes_the_annotations_and_says_so(grabcut_copy: Path):
    """A blur moves the boundary: the threshold keeps it evaluable (a warning), but the copy
    no longer gives the release's numbers, which the fingerprint reports as an error."""
    mask_path = grabcut_copy / "GrabCut" / "boundary_GT" / f"{MASK}.bmp"
    assert cv2.imwrite(str(mask_path), cv2.GaussianBlur(cv2.imread(str(mask_path)), (5, 5), 0))
    result = _verify(grabcut_copy)
    assert result.exit_code == 1
    (warning,) = _lines(result.output, "WARN")
    assert warning.startswith(f"{mask_path}: ") and "accepted by the official threshold" in warning
    (error,) = _lines(result.output, "ERROR")
    assert "annotations differ from the reference copy" in error


def test_clean_copy_has_no_warning(data_root: Path):
    result = CliRunner().invoke(
        datasets_cli, ["verify", "--data-root", str(data_root), "--datasets", "grabcut,davis"]
    )
    assert result.exit_code == 0, result.output
    assert _lines(result.output, "WARN") == [] and _lines(result.output, "ERROR") == []
    strict = CliRunner().invoke(
        datasets_cli,
        ["verify", "--data-root", str(data_root), "--datasets", "grabcut", "--strict"],
    )
    assert strict.exit_code == 0, strict.output
    samples = [s for r in list_samples("grabcut", data_root)[:5] for s in r.load()]
    assert all(s.warnings == () for s in samples)


def test_text_file_saved_as_png_is_not_a_png(grabcut_copy: Path, tmp_path: Path):
    images = grabcut_copy / "GrabCut" / "data_GT"
    target = images / f"{MASK}.png"
    (images / f"{MASK}.jpg").rename(target)  # a JPEG under a .png name ...
    masks = grabcut_copy / "GrabCut" / "boundary_GT"
    (masks / f"{MASK}.bmp").unlink()  # ... and a text file under the mask's .png name
    (masks / f"{MASK}.png").write_text("<html><body>404 Not Found</body></html>\n")

    result = _verify(grabcut_copy)
    assert result.exit_code == 1
    errors = _lines(result.output, "ERROR")
    expected = (
        f"{masks / (MASK + '.png')}: not a PNG file (it starts with the text '<html><body>404 Not "
        "Foun', not the PNG signature)"
    )
    assert expected in errors, errors
    assert not any("truncated" in e for e in errors)
    # The JPEG renamed to .png is read by content, as cv2.imread does: not an error.
    assert not any(str(target) in e for e in errors)
    (ref,) = [r for r in list_samples("grabcut", grabcut_copy) if r.id == MASK]
    with pytest.raises(SampleError, match="not a PNG file"):
        ref.load()


def test_truncated_png_still_says_truncated(grabcut_copy: Path):
    masks = grabcut_copy / "GrabCut" / "boundary_GT"
    png = masks / f"{MASK}.png"
    assert cv2.imwrite(str(png), cv2.imread(str(masks / f"{MASK}.bmp")))
    (masks / f"{MASK}.bmp").unlink()
    data = png.read_bytes()
    png.write_bytes(data[: len(data) // 2])
    errors = _lines(_verify(grabcut_copy).output, "ERROR")
    assert f"{png}: truncated PNG (no IEND chunk)" in errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data-root", "/no/such/dir"], "ERROR: data root /no/such/dir does not exist"),
        ([], "ERROR: no --data-root given"),
    ],
)
def test_missing_data_root_is_an_error_for_verify_and_list(args, message, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    verify = CliRunner().invoke(datasets_cli, ["verify", *args])
    assert verify.exit_code == 1 and message in verify.output
    assert "sound" not in verify.output
    listing = CliRunner().invoke(datasets_cli, ["list", *args])
    assert message in listing.output
    # Without any root, `list` is still the registry's reference card (exit 0).
    assert listing.exit_code == (1 if args else 0)


def test_data_root_that_is_a_file(tmp_path: Path):
    root = tmp_path / "root.txt"
    root.write_text("x")
    result = CliRunner().invoke(datasets_cli, ["verify", "--data-root", str(root)])
    assert result.exit_code == 2  # click's usage error names the path
    assert str(root) in result.output and "is a file" in result.output


def test_bundled_demo_alone_needs_no_root(monkeypatch):
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    result = CliRunner().invoke(datasets_cli, ["verify", "--datasets", "demo"])
    assert result.exit_code == 0, result.output
    assert "all checked datasets are sound" in result.output
