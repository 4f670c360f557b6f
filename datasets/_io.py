"""File reading shared by every dataset loader, with errors that name the file.

Official loaders read with OpenCV in colour mode and convert BGR to RGB (PROTOCOL.md
section 8). OpenCV silently returns grey-filled pixels for a truncated JPEG or PNG, so we
check the end markers ourselves: a run must skip a damaged file, not evaluate half an image.
"""

from __future__ import annotations

import fnmatch
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from bench.datasets.orientation import orientation_warning
from bench.sample import Sample, SampleError

_JPEG_SUFFIXES = {".jpg", ".jpeg", ".jpe"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_START = b"\xff\xd8\xff"

ObjectMasks = Sequence[tuple[int | None, np.ndarray]]
"""Objects of one image in official order: (label in the annotation or None, tri-state gt)."""


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SampleError(path, "file is missing") from None
    except IsADirectoryError:
        raise SampleError(path, "is a folder, not a file") from None
    except OSError as exc:
        raise SampleError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise SampleError(path, "file is empty")
    return data


def _check_complete(path: Path, data: bytes) -> None:
    """End markers of the format the bytes are in (OpenCV, like the official `cv2.imread`,
    decodes by content, so a JPEG named `.png` is read as a JPEG)."""
    if data.startswith(_JPEG_START) and b"\xff\xd9" not in data[-4096:]:
        raise SampleError(path, "truncated JPEG (no end-of-image marker)")
    if data.startswith(_PNG_SIGNATURE) and _PNG_END not in data[-4096:]:
        raise SampleError(path, "truncated PNG (no IEND chunk)")


def _first_bytes(data: bytes) -> str:
    """How a non-image file starts, so that a text or HTML file saved as an image is obvious."""
    text = data[:24].decode("ascii", errors="replace")
    if text.strip() and all(c.isprintable() or c in "\r\n\t" for c in text):
        return f"it starts with the text {text.strip().splitlines()[0]!r}"
    return f"its first bytes are {data[:12]!r}"


def _not_an_image(path: Path, data: bytes) -> str:
    suffix = path.suffix.lower()
    if suffix == ".png" and not data.startswith(_PNG_SIGNATURE):
        return f"not a PNG file ({_first_bytes(data)}, not the PNG signature)"
    if suffix in _JPEG_SUFFIXES and not data.startswith(_JPEG_START):
        return f"not a JPEG file ({_first_bytes(data)}, not a JPEG start-of-image marker)"
    return "cannot be decoded as an image (corrupt or unsupported format)"


def _decode(path: Path, flags: int) -> np.ndarray:
    data = read_bytes(path)
    _check_complete(path, data)
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if img is None:
        raise SampleError(path, _not_an_image(path, data))
    return img


def read_color(path: Path) -> np.ndarray:
    """H x W x 3 uint8 in OpenCV's BGR order, as `cv2.imread(path)` gives.

    Colour mode turns grey files into three equal channels, 16-bit files into 8-bit,
    palette PNGs into their colours, and applies the JPEG EXIF orientation, exactly as
    the official loaders see their inputs.
    """
    return _decode(path, cv2.IMREAD_COLOR)


def read_unchanged(path: Path) -> np.ndarray:
    """The file's own samples (`cv2.IMREAD_UNCHANGED`): 16-bit ids stay 16-bit; colour is BGR."""
    return _decode(path, cv2.IMREAD_UNCHANGED)


def read_rgb(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB, as the official loaders produce."""
    return cv2.cvtColor(read_color(path), cv2.COLOR_BGR2RGB)


def matching_entries(folder: Path, pattern: str) -> list[Path]:
    """Non-hidden files matching `pattern`, in code-point order of their names.

    Official loaders use `sorted(folder.glob(pattern))`; pathlib's glob is case-sensitive
    on POSIX and also matches hidden files such as `.DS_Store`, on which the official
    loader then crashes. We skip hidden files with a warning (`hidden_entries` lets
    `bench datasets verify` report them).
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder is missing")
    names = sorted(
        p.name for p in folder.iterdir() if fnmatch.fnmatchcase(p.name, pattern) and p.is_file()
    )
    hidden = [n for n in names if n.startswith(".")]
    if hidden:
        warnings.warn(f"{folder}: skipping hidden files {hidden}", stacklevel=2)
    return [folder / n for n in names if not n.startswith(".")]


def hidden_entries(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith("."))


def unresolved_links(folder: Path) -> list[SampleError]:
    """Symbolic links that lead to no file (a loop, or a missing target): listing skips them,
    as the official glob-and-read would fail on them, so `verify` says so."""
    if not folder.is_dir():
        return []
    problems = []
    for p in sorted(folder.iterdir()):
        if p.is_symlink() and not p.is_file() and not p.is_dir():
            try:
                p.resolve(strict=True)
                why = "points to something that is not a file"
            except RuntimeError:
                why = "is a loop of symbolic links"
            except OSError:
                why = "points to a missing file"
            problems.append(SampleError(p, f"symbolic link that {why}; not listed"))
    return problems


def alpha_only_note(path: Path) -> str:
    """ " (the object is only in the alpha channel ...)" for a mask whose colour channels are
    empty but whose alpha channel draws something, else ""; masks are read without alpha."""
    try:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return ""
    if raw is None or raw.ndim != 3 or raw.shape[2] != 4:
        return ""
    alpha = raw[:, :, 3]
    if raw[:, :, :3].any() or alpha.min() == alpha.max():
        return ""
    return (
        " (the object is drawn only in the alpha channel, which masks do not use: save the "
        "mask with the object in its grey or colour values)"
    )


def stem_to_first_dot(name: str) -> str:
    """Official sample name to mask key: `image_name.split('.')[0]`."""
    return name.split(".")[0]


def read_text_ids(path: Path) -> list[str]:
    """One id per line, stripped, in file order (official `[x.strip() for x in readlines()]`).

    Blank lines are dropped: the official loader would keep them and then fail on `/.jpg`.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file is missing")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


class _PlainUnpickler(pickle.Unpickler):
    """Official list caches hold only lists, tuples, str and int (numpy scalars at most).

    Refusing every other global keeps a foreign pickle in a dataset folder from running code.
    """

    _ALLOWED = {
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_plain_pickle(path: Path):
    try:
        with path.open("rb") as f:
            return _PlainUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise FileNotFoundError(f"{path}: unreadable list pickle ({exc})") from None


def make_samples(
    dataset: str,
    sample_id: str,
    image: np.ndarray,
    image_path: Path,
    mask_path: Path,
    objects: ObjectMasks,
    warnings: Sequence[str] = (),
) -> list[Sample]:
    """Samples of one image; ids are `<image id>` or `<image id>#<label>` for multi-object sets.

    Each gt must match the image size and contain object pixels: an empty object cannot be
    clicked (the official loop would divide 0 by 0), so it is a bad sample, not a result.
    `warnings` ("path: what", see `Sample.warnings`) go to every instance of the image, with
    one more for an image whose EXIF Orientation is not 1 (`orientation.py`).
    """
    if not objects:
        raise SampleError(mask_path, "annotation has no objects")
    turned = orientation_warning(image_path)
    if turned is not None:
        warnings = (*warnings, f"{image_path}: {turned}")
    samples = []
    for label, gt in objects:
        if gt.shape != image.shape[:2]:
            raise SampleError(
                mask_path,
                f"mask is {gt.shape[0]}x{gt.shape[1]} but image {image_path.name} is "
                f"{image.shape[0]}x{image.shape[1]}",
            )
        sid = sample_id if label is None else f"{sample_id}#{label}"
        if not np.any(gt == 1):
            what = "mask" if label is None else f"object {label}"
            raise SampleError(mask_path, f"{what} has no object pixels{alpha_only_note(mask_path)}")
        samples.append(
            Sample(sid, image, gt.astype(np.int8), dataset, image_path, mask_path, tuple(warnings))
        )
    return samples
