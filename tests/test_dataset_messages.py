"""What `bench datasets verify` says about two easy-to-miss mask-folder problems: a symbolic
link that loops (or points nowhere) is named instead of silently dropped, and an RGBA mask
whose object is drawn only in the alpha channel is named as such."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from bench.cli import main as bench_main


def folder_dataset(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    image = np.full((24, 32, 3), 90, np.uint8)
    cv2.imwrite(str(root / "images" / "a.png"), image)
    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[6:18, 8:24, 3] = 255  # the object only in alpha; colour channels all zero
    cv2.imwrite(str(root / "masks" / "a.png"), rgba)
    return root


def test_verify_names_alpha_only_masks_and_looping_links(tmp_path):
    root = folder_dataset(tmp_path / "ds")
    (root / "masks" / "loop.png").symlink_to("loop.png")
    (root / "masks" / "gone.png").symlink_to("missing.png")
    result = CliRunner().invoke(bench_main, ["datasets", "verify", "--datasets", f"folder:{root}"])
    output = " ".join(result.output.split())
    assert "loop.png: symbolic link that is a loop of symbolic links; not listed" in output
    assert "gone.png: symbolic link that points to a missing file; not listed" in output
    assert "mask has no object pixels (the object is drawn only in the alpha channel" in output
    assert result.exit_code == 1  # the alpha-only mask is an error: nothing to evaluate
