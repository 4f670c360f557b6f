"""EXIF orientation of image files, for `bench datasets verify`.

`cv2.imread`, and so every official loader, turns an image upright by its EXIF Orientation
tag, and so does this harness (`_io.read_color`). A mask carries no such tag, so a tagged
image whose mask was drawn on the stored (unrotated) pixels misaligns silently: with a 180
degree turn the sizes still agree. Loading such an image therefore adds a warning to its
samples (`Sample.warnings`), which `bench run` records and `bench datasets verify` prints;
the run keeps the official behaviour (the image is used upright).
"""

from __future__ import annotations

import struct
from pathlib import Path

ORIENTATION_TAG = 0x0112
MEANING = {
    2: "mirrored left-right",
    3: "rotated 180 degrees",
    4: "mirrored top-bottom",
    5: "mirrored and rotated 90 degrees",
    6: "rotated 90 degrees clockwise",
    7: "mirrored and rotated 270 degrees",
    8: "rotated 90 degrees counter-clockwise",
}
_HEAD = 1 << 16  # EXIF sits in the first segments of a JPEG (APP1 is at most 64 KiB)


def _tiff_orientation(tiff: bytes) -> int | None:
    """Orientation from a TIFF-structured EXIF block (IFD0), or None."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    end = "<" if tiff[:2] == b"II" else ">"
    (offset,) = struct.unpack(end + "I", tiff[4:8])
    if offset + 2 > len(tiff):
        return None
    (count,) = struct.unpack(end + "H", tiff[offset : offset + 2])
    for i in range(count):
        entry = tiff[offset + 2 + 12 * i : offset + 14 + 12 * i]
        if len(entry) < 12:
            return None
        tag, kind = struct.unpack(end + "HH", entry[:4])
        if tag == ORIENTATION_TAG and kind == 3:
            return struct.unpack(end + "H", entry[8:10])[0]
    return None


def _jpeg_exif(data: bytes) -> bytes | None:
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata after
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            return body[6:]
        pos += 2 + length
    return None


def _png_exif(data: bytes) -> bytes | None:
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"eXIf":
            return data[pos + 8 : pos + 8 + length]
        if kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


def exif_orientation(path: Path) -> int | None:
    """The EXIF Orientation of a JPEG or PNG file (1..8), or None when it has none."""
    try:
        with path.open("rb") as f:
            data = f.read(_HEAD)
    except OSError:
        return None
    if data.startswith(b"\xff\xd8"):
        exif = _jpeg_exif(data)
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        exif = _png_exif(data)
    else:
        return None
    return _tiff_orientation(exif) if exif else None


def orientation_warning(path: Path) -> str | None:
    """The `verify` warning for an image whose Orientation is not 1, or None."""
    value = exif_orientation(path)
    if value is None or value == 1:
        return None
    what = MEANING.get(value, "an unknown value")
    return (
        f"EXIF Orientation {value} ({what}): read upright as cv2.imread does (the official "
        "loaders' behaviour, which this run keeps); its mask must be drawn on the upright "
        "image, or it misaligns silently"
    )
