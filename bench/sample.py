"""The values that travel between datasets, predictors and the protocol.

Kept free of torch and I/O so every layer can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

IGNORE = -1
"""Ground-truth value of void pixels (RITM/SimpleClick `ignore_label`, PROTOCOL.md section 1)."""


class Click(NamedTuple):
    """One simulated click in original image pixels; (row, col) as the official clicker."""

    y: int
    x: int
    positive: bool


@dataclass(frozen=True, eq=False)
class Sample:
    """One evaluated instance: an image and the tri-state mask of one object.

    `gt` is H x W int8 with 1 = object, 0 = background, -1 = ignore. `dataset` is the
    official dataset name (`GrabCut`, `DAVIS`, ...) because official predictors change
    their zoom-in for `DAVIS` (PROTOCOL.md section 5). Real methods must not read `gt`.
    """

    id: str
    image: np.ndarray
    gt: np.ndarray
    dataset: str
    image_path: Path | None = None
    mask_path: Path | None = None
    # "path: what" notes on input the official rule accepts but a clean copy lacks (e.g. mask
    # values mapped by the threshold); `bench run` records them, `bench datasets verify` lists
    # the same text as warnings.
    warnings: tuple[str, ...] = ()


class SampleError(Exception):
    """A sample that cannot be evaluated; the message names the file and what is wrong."""

    def __init__(self, path: Path | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True, eq=False)
class SampleRef:
    """A cheaply listed dataset entry (usually one image) whose decoding is deferred.

    Listing never decodes pixels, so a run can skip finished entries on resume and a bad
    file only fails its own `load()`. One entry may hold several instances (SimpleClick
    evaluates every object of an image, PROTOCOL.md section 3).
    """

    dataset: str
    id: str
    files: tuple[Path, ...]
    load: Callable[[], Sequence[Sample]] = field(repr=False)
