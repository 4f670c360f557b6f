"""`--shard I/N`: a deterministic slice of every dataset.

Rule: after `--limit`, the entry at listing index i belongs to shard i mod N (0-based I).
It depends on the listing alone (never on timing or on which process starts first), so the N
shards are disjoint, cover the run, and merge into exactly the unsharded run; round-robin
also spreads the hard images of a dataset's end (DAVIS, SBD) over all shards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

RULE = "listing index i (after --limit) belongs to shard i mod count"


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(
                f"shard {self.index}/{self.count}: the index must be 0..count-1 "
                f"(0-based, e.g. 0/{max(self.count, 1)})"
            )

    def select(self, items: Sequence[T]) -> list[tuple[int, T]]:
        """(listing index, item) of this shard's items, in listing order."""
        return [(i, item) for i, item in enumerate(items) if i % self.count == self.index]

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "rule": RULE}

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return Shard(int(match.group(1)), int(match.group(2)))
