"""File reading shared by every dataset loader, with errors that name the file.

Official loaders read with OpenCV in colour mode and convert BGR to RGB
(PROTOCOL.md section 8); OpenCV silently returns grey-filled pixels for a truncated JPEG,
so we check the end-of-image marker ourselves.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

from bench.sample import SampleError

_JPEG_SUFFIXES = {".jpg", ".jpeg", ".jpe"}


def _read_bytes(path: Path) -> np.ndarray:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SampleError(path, "file is missing") from None
    except OSError as exc:
        raise SampleError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise SampleError(path, "file is empty")
    if path.suffix.lower() in _JPEG_SUFFIXES and b"\xff\xd9" not in data[-4096:]:
        raise SampleError(path, "truncated JPEG (no end-of-image marker)")
    return np.frombuffer(data, dtype=np.uint8)


def read_color(path: Path) -> np.ndarray:
    """H x W x 3 uint8 in OpenCV's BGR order, as `cv2.imread(path)` would give."""
    buf = _read_bytes(path)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise SampleError(path, "cannot be decoded as an image (corrupt or unsupported format)")
    return img


def read_rgb(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB, as the official loaders produce."""
    return cv2.cvtColor(read_color(path), cv2.COLOR_BGR2RGB)


def list_image_folder(folder: Path) -> list[Path]:
    """Entries whose name contains a dot, in code-point order (official `sorted(glob('*.*'))`).

    The official loader also picks up hidden files such as `.DS_Store` and then crashes; we
    skip them with a warning instead.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder is missing")
    names = sorted(p.name for p in folder.iterdir() if "." in p.name)
    hidden = [n for n in names if n.startswith(".")]
    if hidden:
        warnings.warn(f"{folder}: skipping hidden files {hidden}", stacklevel=2)
    return [folder / n for n in names if not n.startswith(".")]


def stem_to_first_dot(name: str) -> str:
    return name.split(".")[0]


def check_mask(gt: np.ndarray, image: np.ndarray, image_path: Path, mask_path: Path) -> np.ndarray:
    """Common sanity checks; returns `gt` as int8."""
    if gt.shape != image.shape[:2]:
        raise SampleError(
            mask_path,
            f"mask is {gt.shape[0]}x{gt.shape[1]} but image {image_path.name} is "
            f"{image.shape[0]}x{image.shape[1]}",
        )
    if not np.any(gt == 1):
        raise SampleError(mask_path, "mask has no object pixels")
    return gt.astype(np.int8)
