"""The values that travel between datasets, predictors and the protocol.

Kept free of torch and I/O so every layer can import it cheaply. A method never receives a
`Sample` (which holds the answer, `gt`) but its `SampleView`: the harness owns the protocol
and the model sees only what a user of the tool would give it (the lm-evaluation-harness rule,
ARCHITECTURE.md). A predictor that declares `oracle = True` (an upper bound, a test fake)
gets the whole `Sample`, and its runs are marked as oracle runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

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
    their zoom-in for `DAVIS` (PROTOCOL.md section 5). `init_mask` is an initial mask a
    dataset hands the method with the image (None unless the dataset provides one). Methods
    receive `view()`, which has no `gt`.
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
    # H x W bool mask the evaluation starts from (DAVIS-585 `sp`/`stm`, ClickSEG
    # `evaluation.py`): the first click corrects its errors and the predictor receives it as
    # its previous mask. None: start from an empty mask (every other benchmark).
    init_mask: np.ndarray | None = None

    def view(self) -> SampleView:
        """What a method may see: everything but the ground truth and where it is stored."""
        return SampleView(self.id, self.image, self.dataset, self.image_path, self.init_mask)


HIDDEN_FROM_METHODS = frozenset({"gt", "mask_path"})


class GroundTruthHiddenError(AttributeError):
    """A predictor reached for the ground truth it is not given."""


@dataclass(frozen=True, eq=False)
class SampleView:
    """The sample as a (non-oracle) predictor receives it: image, id, official dataset name
    (the per-dataset settings of official predictors key on it), image path, and the
    dataset's initial mask where it provides one. Reading `gt` raises
    `GroundTruthHiddenError`, an `AttributeError`, so `hasattr(view, "gt")` is False."""

    id: str
    image: np.ndarray
    dataset: str
    image_path: Path | None = None
    init_mask: np.ndarray | None = None

    def __getattr__(self, name: str) -> Any:
        if name in HIDDEN_FROM_METHODS:
            raise GroundTruthHiddenError(
                f"sample {self.id!r}: predictors do not receive the ground truth "
                f"(`sample.{name}`); a predictor that needs it (an upper bound, a test fake) "
                "declares the class attribute `oracle = True`, and its runs are marked as "
                "oracle runs and never ranked against methods"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def is_oracle(predictor: Any) -> bool:
    """True when the predictor declares `oracle = True` (exactly True, not merely truthy)."""
    return getattr(predictor, "oracle", False) is True


def predictor_input(sample: Sample, predictor: Any) -> Sample | SampleView:
    """What `start` / `open_instance` of `predictor` receive for `sample`."""
    return sample if is_oracle(predictor) else sample.view()


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
