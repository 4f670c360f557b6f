"""Simulated users that are less perfect than the official clicker (issue 12).

The official clicker hits the exact interior-most pixel of the larger error region. RClicks
(Antonov et al., NeurIPS 2024) shows real users do not, and that rankings move when clicks
are realistic. These models keep everything of the official rule except where the click lands:

- the error region is chosen exactly as the official rule chooses it (the larger maximum
  distance to a non-error pixel wins, a tie goes to the false positives, i.e. a negative
  click), as RClicks' own clicker does before it samples a pixel inside that region
  (emb-ai/rclicks `isegm/isegm/inference/clicker.py:_get_next_click`: `is_positive =
  fn_max_dist > fp_max_dist`, then a draw restricted to that error mask and the unclicked map);
- a click never lands on an already clicked pixel or on an ignore pixel (error masks hold
  valid pixels only, `bench.protocol.errors`);
- with nothing left to click (no error, or every error pixel already clicked) the model returns
  the official click, which is then (0, 0) negative as the official `np.where` gives.

FocalClick (Chen et al., CVPR 2022) and its ClickSEG code evaluate with the RITM clicker
unchanged (alibaba/ClickSEG `isegm/inference/clicker.py`); we found no click-perturbation
protocol there to follow, so the perturbations below are ours except where a docstring names
a source. All randomness comes from `ClickContext.rng`, which depends only on `--seed`, the
dataset and the sample id, so batched, sharded and resumed runs give the same clicks.

Speed: the official choice costs the two bounding-box distance transforms of
`bench.protocol`; `border-distance` reuses `protocol.error_distance` for a third on the chosen
region only, and `jitter` looks only at a window of 4 sigma around the official point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bench import protocol
from bench.clicks import ClickContext, ClickModel
from bench.sample import Click

JITTER_TRUNCATE = 4.0
"""Jitter offsets beyond this many sigmas per axis are dropped (2D mass lost < 1e-4)."""


def _non_negative(model: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"click model {model}: {name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"click model {model}: {name} must be finite and >= 0, got {value!r}")
    return float(value)


def official_choice(errors: protocol.Errors, clicks: Sequence[Click]) -> tuple[Click, bool]:
    """The official click, and whether it lies in a real error (False: nothing left to click).

    When the official rule finds a positive maximum distance, its click is an unclicked pixel
    of the chosen region (clicked pixels count as distance 0), so the region is
    `errors.fn if click.positive else errors.fp`; otherwise it points at (0, 0).
    """
    clicked = [(c.y, c.x) for c in clicks]
    click = protocol.next_click_from_errors(errors, clicked)
    region = errors.fn if click.positive else errors.fp
    live = bool(region[click.y, click.x]) and (click.y, click.x) not in set(clicked)
    return click, live


def _drop_clicked(mask: np.ndarray, origin: tuple[int, int], clicks: Sequence[Click]) -> None:
    """Clear, in a crop of the image whose top-left pixel is `origin`, the clicked pixels."""
    r0, c0 = origin
    h, w = mask.shape
    for c in clicks:
        if 0 <= c.y - r0 < h and 0 <= c.x - c0 < w:
            mask[c.y - r0, c.x - c0] = False


def _uniform_pixel(
    mask: np.ndarray, origin: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int] | None:
    """A uniformly random True pixel of a crop (raster order fixes the draw), in image coords."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    i = int(rng.integers(ys.size))
    return origin[0] + int(ys[i]), origin[1] + int(xs[i])


def jitter(sigma: float = 5.0) -> ClickModel:
    """The official point moved by isotropic Gaussian noise (sigma px per axis), kept inside
    the chosen error region by resampling, never by snapping.

    Resampling means the click follows the Gaussian conditioned on landing on an unclicked
    pixel of the region: exactly what redrawing until it lands there gives, done in one draw by
    weighting the region's pixels in a window of `JITTER_TRUNCATE` sigma around the official
    point by the Gaussian density at their centres. Snapping (moving an outside draw to the
    nearest region pixel) would pile the mass of every miss onto the region's border, so on the
    thin error bands of later clicks the typical click would sit on the very pixels whose label
    is least certain: a different, harsher user than "aims at the centre, hand shakes". The
    official point is always a candidate, so the draw never fails; sigma = 0 is the official
    rule. The perturbation and sigma = 5 default are ours (RClicks' `sigma` is the blur of
    its clickability targets, not a click jitter).
    """
    sigma = _non_negative("jitter", "sigma", sigma)
    radius = math.ceil(JITTER_TRUNCATE * sigma)

    def model(errors: protocol.Errors, clicks: Sequence[Click], ctx: ClickContext) -> Click:
        official, live = official_choice(errors, clicks)
        if not live or radius == 0:
            return official
        region = errors.fn if official.positive else errors.fp
        h, w = region.shape
        r0, c0 = max(official.y - radius, 0), max(official.x - radius, 0)
        r1, c1 = min(official.y + radius + 1, h), min(official.x + radius + 1, w)
        window = region[r0:r1, c0:c1].copy()
        _drop_clicked(window, (r0, c0), clicks)
        ys, xs = np.nonzero(window)
        dy, dx = ys + (r0 - official.y), xs + (c0 - official.x)
        weight = np.exp(-(dy * dy + dx * dx) / (2.0 * sigma * sigma))
        cumulative = np.cumsum(weight)
        i = int(np.searchsorted(cumulative, ctx.rng.random() * cumulative[-1], side="right"))
        i = min(i, ys.size - 1)
        return Click(r0 + int(ys[i]), c0 + int(xs[i]), official.positive)

    return model


def random_in_error() -> ClickModel:
    """A uniformly random unclicked pixel of the error region the official rule chooses.

    This is RClicks' "UD" baseline (a uniform distribution over the error mask; emb-ai/rclicks
    `experiments/eval_cm/eval_cm_tetris.csv`) placed in RClicks' clicker, which samples inside
    the region picked by the official distance rule. We keep that choice rather than picking
    the region with more pixels: the polarity of every click then matches the official run,
    so a change in NoC measures where the user clicks, not which mistake they fix first.
    """

    def model(errors: protocol.Errors, clicks: Sequence[Click], ctx: ClickContext) -> Click:
        official, live = official_choice(errors, clicks)
        if not live:
            return official
        region = (errors.fn if official.positive else errors.fp).copy()
        _drop_clicked(region, (0, 0), clicks)
        y, x = _uniform_pixel(region, (0, 0), ctx.rng) or (official.y, official.x)
        return Click(y, x, official.positive)

    return model


def border_distance(d: float = 5.0) -> ClickModel:
    """A uniformly random unclicked pixel at least `d` px from the chosen error region's border,
    or the interior-most pixel (the official click) when the region has none that deep.

    "Distance from the border" is the official distance map: the exact Euclidean distance to
    the nearest non-error pixel, the image edge counting as non-error (`protocol.
    error_distance`); a pixel on the region's rim has distance 1, so d <= 1 is
    `random-in-error`. It is compared as an exact integer square, as the official rule does.
    The rule and the d = 5 default are ours; it resembles the margin from the object boundary
    that DIOS (Xu et al., CVPR 2016) keeps when sampling training clicks.
    """
    d = _non_negative("border-distance", "d", d)

    def model(errors: protocol.Errors, clicks: Sequence[Click], ctx: ClickContext) -> Click:
        official, live = official_choice(errors, clicks)
        if not live:
            return official
        found = protocol.error_distance(errors.fn if official.positive else errors.fp)
        assert found is not None  # a live official click lies in the region
        dist, (r0, _, c0, _) = found
        deep = np.rint(dist.astype(np.float64) ** 2) >= d * d
        _drop_clicked(deep, (r0, c0), clicks)
        y, x = _uniform_pixel(deep, (r0, c0), ctx.rng) or (official.y, official.x)
        return Click(y, x, official.positive)

    return model


def first_click_random() -> ClickModel:
    """A uniformly random first click on the object, the official rule for every later click.

    Before the first click the prediction is empty, so the false negatives are the object's
    pixels (ignore pixels are never object). The official first click is the object's centre
    (its interior-most pixel); how much a method depends on that lucky first click is what
    RClicks measures with real users' first clicks. Uniform over the object is our choice.
    """

    def model(errors: protocol.Errors, clicks: Sequence[Click], ctx: ClickContext) -> Click:
        official, live = official_choice(errors, clicks)
        if clicks or not live:
            return official
        y, x = _uniform_pixel(errors.fn, (0, 0), ctx.rng) or (official.y, official.x)
        return Click(y, x, True)

    return model
