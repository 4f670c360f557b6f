"""How `KEY=VALUE` text from the command line becomes a Python value.

One rule for `--model-option` and `--click-model NAME:k=v` alike, so that a factory runs with
exactly the settings typed and the manifest records them as strict JSON:
- `true` / `false` (any case) are booleans;
- a plain decimal integer (`12`, `-3`; not `007`, which stays a string: ids) is an int;
- a plain decimal number (`0.5`, `1e-3`, `-2.`) is a float; `nan`, `inf` and `infinity` are
  *not* numbers here, so they stay strings (a bare NaN is not valid JSON);
- everything else, `none`, `null` and the empty string included, stays the string typed.
A factory that needs None takes the option's absence, not the word.
"""

from __future__ import annotations

import re
from typing import Any

_INT = re.compile(r"[+-]?(0|[1-9]\d*)")
_FLOAT = re.compile(r"[+-]?((0|[1-9]\d*)(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def parse_value(text: str) -> bool | int | float | str:
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if _INT.fullmatch(text.strip()):
        return int(text)
    if _FLOAT.fullmatch(text.strip()):
        return float(text)
    return text


def parse_pairs(items: list[str] | tuple[str, ...], what: str) -> dict[str, Any]:
    """`["k=v", ...]` -> dict; a missing `=` or an empty key is a clear error naming `what`."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what}: {item!r} is not KEY=VALUE")
        out[key.strip()] = parse_value(value.strip())
    return out
