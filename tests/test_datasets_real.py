"""The real GrabCut and DAVIS copies: counts, official order and sizes, and verify on damage.

The order and sizes come from the golden protocol fixtures, which the official SimpleClick
dataset classes produced (`golden/protocol/README.md`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bench.cli.datasets import datasets as datasets_cli
from bench.datasets import get_dataset, list_samples
from bench.datasets.verify import verify_dataset
from bench.sample import SampleError


@pytest.mark.parametrize(("name", "golden_file"), [("grabcut", "GrabCut"), ("davis", "DAVIS")])
def test_order_sizes_and_counts_match_golden(name, golden_file, data_root: Path, golden: Path):
    reference = json.loads((golden / "protocol" / f"{golden_file}.json").read_text())
    refs = list_samples(name, data_root)
    samples = [s for ref in refs for s in ref.load()]
    assert len(samples) == reference["num_instances"]
    assert len(refs) == reference["num_images"]
    expected = [(inst["image"], inst["hw"]) for inst in reference["instances"]]
    got = [(s.image_path.name, list(s.gt.shape)) for s in samples]
    assert got == expected
    assert all(s.image.shape[:2] == s.gt.shape for s in samples)
    assert {s.dataset for s in samples} == {reference["dataset"]}


@pytest.mark.parametrize(("name", "count"), [("grabcut", 50), ("davis", 345)])
def test_verify_real_copy_is_clean(name, count, data_root: Path):
    report = verify_dataset(get_dataset(name), data_root)
    assert report.problems == ()
    assert report.ok and report.instances == count and report.images == count


def test_verify_names_truncated_image_and_missing_mask(data_root: Path, tmp_path: Path):
    copy = tmp_path / "GrabCut"
    shutil.copytree(data_root / "GrabCut", copy, copy_function=shutil.copyfile)
    truncated = copy / "data_GT" / "124080.jpg"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    missing_mask = copy / "boundary_GT" / "153077.bmp"
    missing_mask.unlink()

    result = CliRunner().invoke(
        datasets_cli, ["verify", "--data-root", str(tmp_path), "--datasets", "grabcut"]
    )
    assert result.exit_code == 1, result.output
    bad = [line for line in result.output.splitlines() if line.startswith("  ERROR")]
    assert any(str(truncated) in line and "truncated JPEG" in line for line in bad), bad
    image_of_missing = copy / "data_GT" / "153077.jpg"
    assert any(str(image_of_missing) in line and "mask is missing" in line for line in bad)
    assert any("48 instances found, expected 50" in line for line in bad)
    assert len(bad) == 3, bad

    # A run skips exactly these two entries, with an error naming the file.
    errors = {}
    for ref in list_samples("grabcut", tmp_path):
        try:
            ref.load()
        except SampleError as error:
            errors[ref.id] = error.path
    assert errors == {"124080": str(truncated), "153077": str(image_of_missing)}


def test_verify_detects_a_reprocessed_copy(data_root: Path, tmp_path: Path):
    """Right counts, valid values, one mask edited: only the fingerprint can tell."""
    copy = tmp_path / "GrabCut"
    shutil.copytree(data_root / "GrabCut", copy, copy_function=shutil.copyfile)
    mask_path = copy / "boundary_GT" / "106024.bmp"
    mask = cv2.imread(str(mask_path))
    background = np.argwhere(mask[:, :, 0] == 0)[0]
    mask[tuple(background)] = 255
    assert cv2.imwrite(str(mask_path), mask)

    report = verify_dataset(get_dataset("grabcut"), tmp_path)
    assert report.instances == 50
    assert [p.problem.split(" (")[0] for p in report.problems] == [
        "annotations differ from the reference copy"
    ]
