"""RClicks' realistic users: a click drawn from a clickability map inside the official error
region, optionally from one slice of the map's probability mass (Antonov et al., "RClicks:
Realistic Click Simulation for Benchmarking Interactive Segmentation", NeurIPS 2024).

`--click-model rclicks:prior=dt,group=1` reproduces emb-ai/rclicks
`isegm/isegm/inference/clicker.py:Clicker._get_next_click` with a click model, step by step:

1. the error region is chosen exactly as the official rule chooses it (`fn_max_dist >
   fp_max_dist` on the one-pixel-padded distance transforms, a tie is a negative click);
2. `map = prior(image, gt, region) * region * not_clicked` in float32, where `region` is the
   chosen error mask on valid pixels that still holds the clicked pixels (RClicks passes the
   clicker's unpadded `fn_mask` / `fp_mask` to the model);
3. mass slicing: `s = sort(map)`, `c = cumsum(s)` (zeros included, float32);
   `thr_low = s[c.searchsorted(low * sum(s), 'left')]`, `thr_high = s[c.searchsorted(high *
   sum(s), 'right')]` (clamped to the last index); the map keeps the values in
   `[thr_low, thr_high]` (value thresholds, so ties are all kept);
4. `probs = map / sum(map)`; if any is NaN (an empty or all-zero slice) the click is the
   official one (first raster maximum of the distance map), and no random number is used;
   otherwise `np.random.choice(np.arange(H * W), p=probs.flatten())` on the legacy MT19937
   `RandomState`, which consumes exactly one double per click.

Seeding, as RClicks' evaluation does it (emb-ai/rclicks `isegm/isegm/inference/evaluation.py`):
`evaluate_functor(dataset, predictor, index, ...)` calls `setup_deterministic(args.seed)`
(`--seed`, default 42: `np.random.seed(42)`) once per dataset index, i.e. per image, and then
runs `evaluate_sample` for each of `sample.objects_ids` in turn, so the objects of an image
take turns on one global stream: object j starts where object j - 1 stopped. How far that is
depends on the run, not only on `max_clicks`: a click whose slice is empty (NaN, e.g. once the
prediction is perfect) draws nothing, and the early stop (`max_iou_thr`) ends an object
sooner. So the stream cannot be advanced by a fixed count; instead this model keeps one
`RandomState(seed)` per image in `ClickContext.image_state` and declares `objects_in_order`,
which makes the engine evaluate an image's instances one after another in listing order (the
dataset's object order, RClicks' `objects_ids`: ascending ids on TETRIS), other images filling
the batch meanwhile. An image is never split across shards or a resume (both work per entry),
so batched, sharded, resumed and torchrun runs all give RClicks' clicks bit for bit, on
single-object datasets (GrabCut, Berkeley, DAVIS, COCO-MVal as RClicks loads them; tested on
`golden/metrics/rclicks_clicker.json`) and on multi-object images (TETRIS; tested against
RClicks' per-image loop). Called directly with a context of its own, an instance starts a
fresh stream. This generator is independent of `bench run --seed`.

Priors (`rclicks/rclicks/clicksim.py`): `ud` = `uniform_model` (`error / error.max()`), `dt` =
`distance_transform_model` (`dt / dt.max()` with `dt = cv2.distanceTransform(error * 255,
DIST_L2, 0)`, no padding: the image border is not a boundary here, unlike the clicker's own
distance map). Any other value of `prior` names a clickability-map plugin `package.module:
function` or `path/to/file.py:function` with the shape of `ClickabilityMap`; RClicks' trained
clickability network (weights on Google Drive) plugs in that way.

Groups: `group=G` (1..10) is the mass slice `[(G - 1) / 10, G / 10]`, RClicks' experiments
`Trajectory_BOUNDS_0.000_0.100` (G1, the least likely clicks) ... `0.900_1.000` (G10, the
most likely); `mass=LOW-HIGH` gives any slice. With neither, the whole map is used. With a
constant prior (`ud`) every slice keeps every error pixel, so all groups click alike.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench import protocol
from bench.clicks import ClickContext, ClickModel
from bench.sample import Click

ClickabilityMap = Callable[[np.ndarray, np.ndarray, np.ndarray, Sequence[Click]], np.ndarray]
"""`prior(image, gt, error, clicks) -> H x W float map` (cast to float32), non-negative.

- `image`: the H x W x 3 uint8 RGB image as loaded (RClicks' networks take `image / 255.`);
- `gt`: the object mask (bool, `gt == 1`), RClicks' `clicker.gt_mask`;
- `error`: the bool error region the click will be drawn from (false negatives for a positive
  click, false positives for a negative one, ignore pixels excluded, clicked pixels included);
- `clicks`: the clicks so far.
The clicker itself restricts the map to the region and to unclicked pixels; values need not
sum to one. NaN anywhere (e.g. a `0 / 0` normalisation) makes the click the official one.
"""

DEFAULT_SEED = 42
"""RClicks' `--seed` default (`scripts/evaluate_model_*.py`)."""

GROUPS = 10


def uniform_prior(image, gt, error, clicks) -> np.ndarray:
    """UD: `uniform_model(img, mask, error_mask) = error_mask / error_mask.max()`."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float32(error / error.max())


def distance_transform_prior(image, gt, error, clicks) -> np.ndarray:
    """DT: `distance_transform_model`: the unpadded L2 distance transform over its maximum."""
    dt = cv2.distanceTransform((error * 255).astype(np.uint8), cv2.DIST_L2, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float32(dt / dt.max())


PRIORS: dict[str, ClickabilityMap] = {"ud": uniform_prior, "dt": distance_transform_prior}


def load_prior(name: str) -> ClickabilityMap:
    """`ud`, `dt`, `package.module:function` or `path/to/file.py:function`."""
    if name in PRIORS:
        return PRIORS[name]
    where, sep, attr = name.rpartition(":")
    if not sep or not where or not attr:
        raise ValueError(
            f"rclicks: prior {name!r} is neither {' nor '.join(PRIORS)} nor "
            "'package.module:function' / 'path/to/file.py:function'"
        )
    if where.endswith(".py") or "/" in where:
        file = Path(where).resolve()
        if not file.is_file():
            raise ValueError(f"rclicks: prior file {file} does not exist")
        module_name = f"iseg_bench_clickability_{abs(hash(str(file)))}"
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, file)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        source = str(file)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise ValueError(f"rclicks: prior {name!r}: cannot import {where}: {exc}") from None
        source = where
    prior = getattr(module, attr, None)
    if not callable(prior):
        raise ValueError(f"rclicks: {source} defines no function {attr!r}")
    return prior


def mass_bounds(mass: str | None = None, group: int | None = None) -> tuple[float, float]:
    """(low, high) of the probability-mass slice: `group=G` or `mass=LOW-HIGH`, else (0, 1).

    Group bounds are `k / 10`, which equal the decimal text RClicks' scripts pass
    (`--trajectory_sampling_prob_low=0.3`), so a threshold is the same float.
    """
    if mass is not None and group is not None:
        raise ValueError("rclicks: give mass=LOW-HIGH or group=G, not both")
    if group is not None:
        if isinstance(group, bool) or not isinstance(group, int) or not 1 <= group <= GROUPS:
            raise ValueError(f"rclicks: group must be an integer 1..{GROUPS}, got {group!r}")
        return (group - 1) / GROUPS, group / GROUPS
    if mass is None:
        return 0.0, 1.0
    low_text, sep, high_text = str(mass).partition("-")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        sep = ""
    if not sep or not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"rclicks: mass must be LOW-HIGH with 0 <= LOW <= HIGH <= 1, got {mass!r}")
    return low, high


@dataclass(frozen=True, eq=False)
class MassOrder:
    """A click map with RClicks' sorted values and their float32 cumulative sum: everything
    a mass slice needs, computed once and shared by every slice of the same map."""

    click_map: np.ndarray
    ordered: np.ndarray
    cumulative: np.ndarray
    total: np.float32

    @property
    def nbytes(self) -> int:
        return self.click_map.nbytes + self.ordered.nbytes + self.cumulative.nbytes


def mass_order(prior_map: np.ndarray, region: np.ndarray, not_clicked: np.ndarray) -> MassOrder:
    """`prior * region * not_clicked` (float32, in RClicks' order of operations), sorted."""
    click_map = np.asarray(prior_map, dtype=np.float32)
    click_map = click_map * region.astype(np.float32) * not_clicked
    ordered = np.sort(click_map.flatten())
    return MassOrder(click_map, ordered, ordered.cumsum(), ordered.sum())


def mass_slice(order: MassOrder, low: float, high: float) -> np.ndarray:
    """The values of the map whose cumulative mass falls in [low, high] (ties all kept)."""
    ordered, cumulative, total = order.ordered, order.cumulative, order.total
    idx_low = cumulative.searchsorted(total * low, side="left")
    idx_high = cumulative.searchsorted(total * high, side="right")
    if idx_high == len(ordered):
        idx_high -= 1
    thr_low, thr_high = ordered[idx_low], ordered[idx_high]
    click_map = order.click_map
    return click_map * (click_map >= thr_low) * (click_map <= thr_high)


def sliced_map(
    prior_map: np.ndarray,
    region: np.ndarray,
    not_clicked: np.ndarray,
    low: float,
    high: float,
) -> np.ndarray:
    """The map a click is drawn from: RClicks' product and mass slice, in its float32 order."""
    return mass_slice(mass_order(prior_map, region, not_clicked), low, high)


class FirstClickMaps:
    """The first click's ordered map of each instance, shared by the ten groups of a robustness
    run (and any other slice of the same prior) in one process.

    Before the first click the prediction is empty, nothing is clicked and the region is the
    object: the map (a clickability network's output included) and its sort do not depend on
    the group, so group 2..10 reuse group 1's. Keyed by the prior and a sha1 of the image and
    the object mask, so a hit is the same input. Memory is capped: entries are kept in the
    order they come and never evicted, so when the cap is reached the first instances of a
    dataset keep hitting in every later group (an LRU would thrash on a sequential pass).
    """

    def __init__(self, max_bytes: int = 512 * 2**20):
        self.max_bytes = max_bytes
        self._entries: dict[tuple[str, str], MassOrder] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0

    @staticmethod
    def key(prior: str, image: np.ndarray, region: np.ndarray) -> tuple[str, str]:
        digest = hashlib.sha1(np.ascontiguousarray(image).tobytes())
        digest.update(np.packbits(region).tobytes())
        digest.update(repr((image.shape, image.dtype.str, region.shape)).encode())
        return prior, digest.hexdigest()

    def get(self, key: tuple[str, str]) -> MassOrder | None:
        with self._lock:
            found = self._entries.get(key)
            self.hits += found is not None
            return found

    def put(self, key: tuple[str, str], order: MassOrder) -> None:
        with self._lock:
            if key in self._entries or self._bytes + order.nbytes > self.max_bytes:
                return
            for array in (order.click_map, order.ordered, order.cumulative):
                array.flags.writeable = False  # shared by every group's draw
            self._entries[key] = order
            self._bytes += order.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


FIRST_CLICK_MAPS = FirstClickMaps()
"""Shared by every `rclicks` model of the process (`bench robustness` runs the groups in one)."""


def draw(click_map: np.ndarray, rng: np.random.RandomState) -> tuple[int, int] | None:
    """(y, x) drawn in proportion to the map with one double of `rng`; None if any p is NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        probs = click_map / np.sum(click_map)
    if np.isnan(probs).any():
        return None
    index = rng.choice(np.arange(probs.size), p=probs.flatten())
    y, x = np.unravel_index(index, probs.shape)
    return int(y), int(x)


def rclicks(
    prior: str = "dt",
    mass: str | None = None,
    group: int | None = None,
    seed: int = DEFAULT_SEED,
) -> ClickModel:
    """`rclicks:prior=ud|dt|MODULE:FUNCTION[,mass=LOW-HIGH|group=G][,seed=42]`."""
    prior_fn = load_prior(str(prior))
    low, high = mass_bounds(mass, group)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"rclicks: seed must be an integer, got {seed!r}")
    token = object()  # this model's key in an image's shared state

    def stream(ctx: ClickContext) -> np.random.RandomState:
        """The image's generator: made at its first object's first click, then carried on by
        each later object (the engine runs them in order, one at a time)."""
        rng = ctx.image_state.get(token)
        if rng is None:
            rng = ctx.image_state[token] = np.random.RandomState(seed)
        return rng

    def model(errors: protocol.Errors, clicks: Sequence[Click], ctx: ClickContext) -> Click:
        rng = stream(ctx)
        official = protocol.next_click_from_errors(errors, [(c.y, c.x) for c in clicks])
        region = errors.fn if official.positive else errors.fp
        if ctx.image is None:
            raise ValueError("rclicks: the click context carries no image")
        key = FIRST_CLICK_MAPS.key(str(prior), ctx.image, region) if not clicks else None
        order = FIRST_CLICK_MAPS.get(key) if key is not None else None
        if order is None:
            prior_map = prior_fn(ctx.image, ctx.target.object_valid, region, list(clicks))
            if np.shape(prior_map) != region.shape:
                raise ValueError(
                    f"rclicks: prior {prior} returned a {np.shape(prior_map)} map for a "
                    f"{region.shape} image"
                )
            not_clicked = np.ones(region.shape, dtype=bool)
            h, w = region.shape
            for c in clicks:
                not_clicked[min(c.y, h - 1), min(c.x, w - 1)] = False
            order = mass_order(prior_map, region, not_clicked)
            if key is not None:
                FIRST_CLICK_MAPS.put(key, order)
        found = draw(mass_slice(order, low, high), rng)
        if found is None:
            return official
        return Click(found[0], found[1], official.positive)

    model.objects_in_order = True  # type: ignore[attr-defined]
    return model
