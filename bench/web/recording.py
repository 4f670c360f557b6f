"""`bench demo --record FILE`: every click, undo and reset, appended as one JSON line each.

The file is append-only and flushed after every line, so a closed tab or a killed server
loses at most the click in flight; several sessions may append to one file. Each line is an
object with these fields:

- `v`: format version, 1;
- `event`: `click`, `undo` or `reset`;
- `time`: UTC time of the event (ISO 8601), `session`: an id per `bench demo` process;
- `model`: the model's name as `bench demo --model` resolved it;
- `dataset`: registry name (`demo`, `davis`), or `images` for `--images` files;
- `sample_id`: the instance id a `bench run` of that dataset uses;
- `height`, `width`: the image size in pixels;
- a click adds `order` (1-based position in the instance's click sequence), `y`, `x` (row,
  column in original image pixels, as the official clicker), `positive`, `dt_s` (seconds
  since the previous click, undo or reset on this image, or since the image was last shown
  if none came after that; null if the page did not say), `iou` (the float32 IoU after the
  click as a run stores it, null without ground truth) and `model_s` (the model's latency);
- undo and reset add `n_clicks`: how many clicks are left (a reset leaves 0).

Replaying (`bench.clicks.replay`) folds the lines in file order per (dataset, sample id): a
click truncates the sequence to `order - 1` clicks and appends itself, undo and reset
truncate it to `n_clicks`. The result is the sequence the person last saw for that image.
A failed model call records nothing: the page drops that click. The recorder folds every
event the same way before writing it (starting from what the file already holds), and
refuses one that is out of step (say, an undo from a second tab), so a file it wrote always
replays.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from bench.clicks.replay import FORMAT_VERSION, Key, RecordingError, apply_event, read_recording
from bench.sample import Click

__all__ = ["FORMAT_VERSION", "Recorder", "RecordingError"]

log = logging.getLogger("bench")


def _end_last_line(path: Path) -> None:
    """Make the file end with a newline before appending: a torn last line (a server killed
    mid-write) is cut off, a complete one that only lacks its newline gets it."""
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:])
    except ValueError:
        log.warning("%s: cut off a torn last line (%d bytes)", path, len(data) - cut)
        with open(path, "r+b") as fh:
            fh.truncate(cut)
    else:
        with open(path, "ab") as fh:
            fh.write(b"\n")


class Recorder:
    """Appends events to a JSONL file; one lock, one write and one flush per event."""

    def __init__(self, path: Path | str, model: str):
        self.path = Path(path)
        self.model = model
        self.session = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._sequences: dict[Key, list[Click]] = {}
        self._sizes: dict[Key, tuple[int, int]] = {}
        if self.path.is_file() and self.path.stat().st_size:
            _end_last_line(self.path)
            try:
                self._sequences, self._sizes = read_recording(self.path)
            except RecordingError as exc:
                raise RecordingError(f"--record: cannot append to it: {exc}") from None
        try:
            self._file: TextIO = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise OSError(f"--record {self.path}: cannot open for appending: {exc}") from None

    def write(self, event: str, instance: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """One line: the common fields, the instance's (dataset, sample_id, height, width)
        and the event's own fields. Returns what was written."""
        line = {
            "v": FORMAT_VERSION,
            "event": event,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "session": self.session,
            "model": self.model,
            **instance,
            **fields,
        }
        text = json.dumps(line, allow_nan=False) + "\n"
        with self._lock:
            apply_event(line, f"{self.path} (new line)", self._sequences, self._sizes)
            self._file.write(text)
            self._file.flush()
        return line

    def recorded(self, key: Key) -> list[Click]:
        """The instance's click sequence as the file replays it now."""
        with self._lock:
            return list(self._sequences.get(key, ()))

    def close(self) -> None:
        with self._lock:
            self._file.close()
