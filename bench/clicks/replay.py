"""`--click-model replay:clicks.jsonl[,after=stop|official]`: a person's recorded clicks.

`bench demo --record clicks.jsonl` writes the file (format: `bench.web.recording`). The file
is an edit log per instance, so it is folded in file order into one final click sequence per
(dataset, sample id): a click event puts its click at position `order` (dropping any clicks
from that position on, so a new session that starts again at click 1 replaces the old
sequence), an undo or reset event cuts the sequence to `n_clicks`. What replays is what the
person last saw on screen for that image.

Rules, chosen so that a "human" column in a report compares like with like:
- An instance the recording covers gets its recorded clicks, in order. Past the last one,
  `after=stop` (default) ends the instance (the engine treats None as "instance ends"), and
  `after=official` continues with the official clicker up to `--max-clicks`.
- An instance the recording does not cover (or whose sequence ended empty) is skipped: the
  model returns None before its first click. Simulating it instead would put machine clicks
  into the human column.
- The recorded image size must equal the instance's; otherwise the recording was made on
  another copy of the dataset and the instance fails with an error naming the file.
- Dataset names match by registry name or official folder, case-insensitively (`grabcut`,
  `GrabCut`).

The file is read once, when the click model is built. A malformed line is an error naming the
file and the line number, except an unterminated last line: that is the click a killed server
was writing, and it is dropped with a warning.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import protocol
from bench.clicks import ClickContext, ClickModel
from bench.sample import Click

log = logging.getLogger("bench")

FORMAT_VERSION = 1
AFTER_RULES = ("stop", "official")


class RecordingError(ValueError):
    """A recording that cannot be replayed; the message names the file and the line."""


def dataset_key(name: str) -> str:
    """Registry name for a registry name or official folder; anything else lowercased."""
    from bench.datasets import DATASETS

    key = str(name).strip().lower()
    if key in DATASETS:
        return key
    for spec in DATASETS.values():
        if spec.folder.lower() == key:
            return spec.name
    return key


def _field(event: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in event:
        raise RecordingError(f"{where}: missing field {name!r}")
    value = event[name]
    # bool is an int subclass: a boolean is never a valid int field and vice versa.
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise RecordingError(f"{where}: field {name!r} is {value!r}, expected {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


Key = tuple[str, str]


def read_recording(path: Path | str) -> tuple[dict[Key, list[Click]], dict[Key, tuple[int, int]]]:
    """Final click sequence and image size (H, W) of every instance in a recording."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordingError(f"{path}: recording file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: cannot read the recording: {exc}") from None
    lines = text.split("\n")
    sequences: dict[Key, list[Click]] = {}
    sizes: dict[Key, tuple[int, int]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # no newline after it: a write cut short
                log.warning("%s: dropped an unterminated last line (%s)", where, exc.msg)
                continue
            raise RecordingError(f"{where}: not valid JSON: {exc.msg}") from None
        if not isinstance(event, dict):
            raise RecordingError(f"{where}: expected a JSON object, got {type(event).__name__}")
        apply_event(event, where, sequences, sizes)
    return sequences, sizes


def apply_event(
    event: dict[str, Any],
    where: str,
    sequences: dict[Key, list[Click]],
    sizes: dict[Key, tuple[int, int]],
) -> None:
    """Fold one recorded event into the sequences; RecordingError (naming `where`) if it is
    malformed or out of step. `bench demo` folds each event before writing it, so a file it
    wrote always replays."""
    version = _field(event, "v", int, where)
    if version != FORMAT_VERSION:
        raise RecordingError(f"{where}: format version {version}, this reader knows 1")
    kind = _field(event, "event", str, where)
    dataset = _field(event, "dataset", str, where)
    key = (dataset_key(dataset), _field(event, "sample_id", str, where))
    height, width = _field(event, "height", int, where), _field(event, "width", int, where)
    if height <= 0 or width <= 0:
        raise RecordingError(f"{where}: image size {height}x{width} is not positive")
    if sizes.setdefault(key, (height, width)) != (height, width):
        old_h, old_w = sizes[key]
        raise RecordingError(
            f"{where}: {key[0]}/{key[1]} is {height}x{width} here but {old_h}x{old_w} earlier"
        )
    sequence = sequences.setdefault(key, [])
    if kind == "click":
        order = _field(event, "order", int, where)
        y, x = _field(event, "y", int, where), _field(event, "x", int, where)
        positive = _field(event, "positive", bool, where)
        if not 1 <= order <= len(sequence) + 1:
            raise RecordingError(
                f"{where}: click order {order} but the sequence has {len(sequence)} clicks"
            )
        if not (0 <= y < height and 0 <= x < width):
            raise RecordingError(
                f"{where}: click (y={y}, x={x}) is outside the {height}x{width} image"
            )
        del sequence[order - 1 :]
        sequence.append(Click(y, x, positive))
    elif kind in ("undo", "reset"):
        left = _field(event, "n_clicks", int, where)
        if not 0 <= left <= len(sequence) or (kind == "reset" and left != 0):
            raise RecordingError(
                f"{where}: {kind} to {left} clicks but the sequence has {len(sequence)} clicks"
            )
        del sequence[left:]
    else:
        raise RecordingError(f"{where}: unknown event {kind!r}; expected click, undo or reset")


def replay(path: str, after: str = "stop") -> ClickModel:
    """Click model that replays the recording at `path` (see the module docstring)."""
    if after not in AFTER_RULES:
        raise ValueError(f"replay: after={after!r}; expected one of {', '.join(AFTER_RULES)}")
    source = Path(path)
    sequences, sizes = read_recording(source)
    covered = sum(1 for clicks in sequences.values() if clicks)
    log.info("replay: %d instances with recorded clicks in %s (after=%s)", covered, source, after)

    def model(errors: protocol.Errors, clicks: Sequence[Click], ctx: ClickContext) -> Click | None:
        key = (dataset_key(ctx.dataset), str(ctx.sample_id))
        recorded = sequences.get(key)
        if not recorded:
            return None
        if sizes[key] != tuple(ctx.target.shape):
            (h, w), (th, tw) = sizes[key], ctx.target.shape
            raise RecordingError(
                f"{source}: {key[0]}/{key[1]} was recorded on a {h}x{w} image but this "
                f"instance is {th}x{tw}: the recording belongs to another copy of the dataset"
            )
        done = len(clicks)
        if [tuple(c) for c in clicks[: len(recorded)]] != [tuple(c) for c in recorded[:done]]:
            raise RecordingError(
                f"{source}: {key[0]}/{key[1]}: the clicks so far are not the recorded ones"
            )
        if done < len(recorded):
            return recorded[done]
        if after == "official":
            return protocol.next_click_from_errors(errors, [(c.y, c.x) for c in clicks])
        return None

    return model
