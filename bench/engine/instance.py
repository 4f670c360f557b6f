"""One instance's protocol state and its steps (`isegm/inference/evaluation.py:evaluate_sample`,
PROTOCOL.md section 3).

The state is explicit and the loop is three steps (`propose_click`, the predictor call,
`observe_prediction`), so that the engine can advance many instances in lockstep and batch
their network calls; nothing here knows whether it runs at batch 1 or 16. By default every
instance gets all `max_clicks` clicks (the official `--iou-analysis` mode, target 1.01); NoC
at any threshold is the same as with early stopping, and one run yields every metric.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench import protocol
from bench.clicks import ClickContext, ClickModel, instance_rng, parse_click_model
from bench.sample import Click


@dataclass(frozen=True)
class ProtocolSettings:
    max_clicks: int = 20
    pred_thr: float = protocol.PRED_THR
    stop_at_iou: float | None = None  # official early stop (float64 IoU >= value); None = never
    click_model: str = "official"  # `--click-model` text, parsed by bench.clicks
    seed: int = 0  # seeds each instance's click-model generator with its dataset and id
    # Boundary IoU at every click (`biou`); a measurement, not part of the protocol's identity.
    boundary_iou: bool = True

    def __post_init__(self) -> None:
        """Refuse settings no run can use, before a model is loaded or a folder created (the
        CLI checks the same bounds with the option names; this guards programmatic use)."""
        if isinstance(self.max_clicks, bool) or not isinstance(self.max_clicks, int):
            raise ValueError(f"max_clicks={self.max_clicks!r}: expected a whole number")
        if self.max_clicks < 1:
            raise ValueError(f"max_clicks={self.max_clicks}: must be at least 1")
        if not (math.isfinite(self.pred_thr) and 0.0 <= self.pred_thr < 1.0):
            raise ValueError(
                f"pred_thr={self.pred_thr}: must be in [0, 1) (a pixel is object when its "
                "probability is > pred_thr)"
            )
        stop = self.stop_at_iou
        if stop is not None and not (math.isfinite(stop) and 0.0 < stop <= 1.0):
            raise ValueError(f"stop_at_iou={stop}: must be in (0, 1], or None (never stop)")

    def to_json(self) -> dict[str, Any]:
        from bench.metrics import noc_thresholds

        out = asdict(self)
        del out["boundary_iou"]
        out["click_model"] = parse_click_model(self.click_model).to_json()
        target = 1.01 if self.stop_at_iou is None else self.stop_at_iou
        out["noc_thresholds"] = [float(t) for t in noc_thresholds(target)]
        return out


class PredictionError(ValueError):
    """A predictor returned something the protocol cannot score; names what and why."""


@dataclass
class InstanceState:
    """Clicker state of one instance: what the official `Clicker` plus loop keep."""

    target: protocol.Target
    errors: protocol.Errors
    context: ClickContext
    clicks: list[Click] = field(default_factory=list)
    ious: list[np.float32] = field(default_factory=list)
    bious: list[np.float32] = field(default_factory=list)
    done: bool = False
    boundary: protocol.BoundaryTarget | None = None  # the GT band, made at the first click
    gt: np.ndarray | None = field(default=None, repr=False)


def start_instance(
    gt: np.ndarray,
    dataset: str = "",
    sample_id: str = "",
    seed: int = 0,
    image: np.ndarray | None = None,
    init_mask: np.ndarray | None = None,
    image_state: dict[Any, Any] | None = None,
) -> InstanceState:
    """The state before the first click: the errors of an empty prediction, or of the
    dataset's initial mask where it gives one (ClickSEG `evaluation.py`: the first click
    corrects `init_mask`, DAVIS-585 `sp`/`stm`).

    `image_state`: one dict shared by the instances of an entry (`ClickContext`)."""
    target = protocol.Target.from_gt(gt)
    start = np.zeros(gt.shape, dtype=bool) if init_mask is None else init_mask.astype(bool)
    if start.shape != gt.shape:
        raise ValueError(f"initial mask is {start.shape}, the ground truth {gt.shape}")
    rng = instance_rng(seed, dataset, sample_id)
    shared = {} if image_state is None else image_state
    context = ClickContext(dataset, sample_id, target, rng, image, shared)
    return InstanceState(target, protocol.errors(target, start), context, gt=gt)


def propose_click(state: InstanceState, model: ClickModel) -> Click | None:
    """The next click, appended to the state; None (the model has no more clicks) ends it."""
    click = model(state.errors, list(state.clicks), state.context)
    if click is None:
        state.done = True
        return None
    h, w = state.target.shape
    if not (0 <= click.y < h and 0 <= click.x < w):
        raise ValueError(f"click ({click.y}, {click.x}) lies outside the {h} x {w} image")
    click = Click(int(click.y), int(click.x), bool(click.positive))
    state.clicks.append(click)
    return click


def check_probability(prob: Any, shape: tuple[int, int]) -> np.ndarray:
    """The predictor's output as an array the protocol can binarise, or a `PredictionError`.

    Accepted: a float array of probabilities in [0, 1] (any float dtype) or a bool mask, of
    the image's H x W. Refused, each with the reason: None, non-arrays (convert explicitly, so
    a list or a tensor on a GPU is not silently copied), integer maps (a 0/255 uint8 mask would
    pass `> 0.49` everywhere it is 1..255, and 0/1 ints are ambiguous with labels), NaN or
    inf (a broken model must not look like a bad method), values outside [0, 1] (logits).
    """
    if prob is None:
        raise PredictionError("predict() returned None; expected an H x W float array")
    if not isinstance(prob, np.ndarray):
        raise PredictionError(
            f"predict() returned a {type(prob).__name__}; expected an H x W numpy float array "
            "of probabilities or a bool mask"
        )
    if prob.shape != shape:
        raise PredictionError(f"predictor returned a {prob.shape} map for a {shape} image")
    if prob.dtype == bool:
        return prob
    if not np.issubdtype(prob.dtype, np.floating):
        raise PredictionError(
            f"predictor returned a {prob.dtype} map; return float probabilities in [0, 1] or a "
            "bool mask (an integer 0/255 mask is ambiguous)"
        )
    finite = np.isfinite(prob)
    if not finite.all():
        n_nan = int(np.isnan(prob).sum())
        n_inf = int(prob.size - finite.sum() - n_nan)
        raise PredictionError(
            f"predictor returned {n_nan} NaN and {n_inf} inf pixel(s) of {prob.size}"
        )
    low, high = float(prob.min()), float(prob.max())
    if low < 0.0 or high > 1.0:
        raise PredictionError(
            f"predictor returned values in [{low:.4g}, {high:.4g}], outside [0, 1]; "
            "return probabilities (apply the sigmoid to logits)"
        )
    return prob


def observe_prediction(state: InstanceState, prob: Any, settings: ProtocolSettings) -> np.ndarray:
    """Check, binarise, score and stop if asked; returns the binary prediction."""
    prob = check_probability(prob, state.target.shape)
    pred = protocol.binarize(prob, settings.pred_thr)
    state.errors = protocol.errors(state.target, pred)
    value = protocol.iou_from_errors(state.target, state.errors)
    state.ious.append(np.float32(value))
    if settings.boundary_iou:
        if state.boundary is None:
            state.boundary = protocol.BoundaryTarget.from_gt(state.gt)
        state.bious.append(np.float32(protocol.boundary_iou_from_target(state.boundary, pred)))
    stop = settings.stop_at_iou is not None and value >= settings.stop_at_iou
    state.done = stop or len(state.clicks) >= settings.max_clicks
    return pred
