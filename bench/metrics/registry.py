"""The metric registry: every metric is one `MetricSpec` (a name pattern, a per-instance
function, an aggregate, its direction, format and group), looked up by name.

The shape follows pycocotools' COCOeval and lm-evaluation-harness: the trajectories are the raw
per-instance state (`DatasetTrajectories`, built once per dataset by `bench.metrics.evaluate`),
each metric maps that state to one value per instance, and an aggregate turns those values into
the dataset's figure. The bootstrap CI (`bench.stats`) resamples the same per-instance values,
so a figure and its interval can never disagree on what was measured.

A name is matched against the patterns: `NoC@<percent>` is any threshold (`NoC@95`),
`mIoU@<k>` any click (`mIoU@5`). Third-party metrics come from the entry-point group
`iseg_bench.metrics` (an entry point names a `MetricSpec` or a list of them); a pattern that is
already registered is an error naming both sources.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

ENTRY_POINT_GROUP = "iseg_bench.metrics"
AGGREGATES = ("mean", "count", "float32-mean")
PLACEHOLDERS = {"<percent>": r"(\d+(?:\.\d+)?)", "<k>": r"(\d+)"}


class MetricError(ValueError):
    """An unknown metric name or a clash between registrations; the message says which."""


@dataclass(frozen=True)
class DatasetTrajectories:
    """One dataset's raw per-instance state, in stored (official) order.

    `ious[i]` holds instance i's IoU after each click, as stored (float32 in a run folder);
    `bious[i]` its boundary IoU (None for a run made before the `biou` column existed);
    `areas` the GT object pixels per instance (None when unknown). `stop_at_iou` is the run's
    early stop: a NoC above it cannot be measured from trajectories that stop there."""

    dataset: str
    ids: tuple[str, ...]
    ious: tuple[np.ndarray, ...]
    bious: tuple[np.ndarray, ...] | None = None
    areas: np.ndarray | None = None
    max_clicks: int = 20
    nof_rule: str = "official"
    stop_at_iou: float | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def shortest(self) -> int:
        return min((len(s) for s in self.ious), default=0)


InstanceFn = Callable[[DatasetTrajectories, float | None], np.ndarray]


@dataclass(frozen=True)
class MetricSpec:
    """One registry entry.

    `per_instance(data, param)` returns one float per instance (NaN: not measurable for that
    instance); `param` is the pattern's number: a threshold as a fraction for `<percent>`, a
    click for `<k>`, None for a fixed name. `aggregate`: `mean`, `count` (a sum of 0/1 values,
    e.g. NoF) or `float32-mean` (the official mIoU: numpy's float32 mean over instances).
    `instance_prefix` renames the per-instance column (`mIoU@5` is the mean of `IoU@5`).
    `requires` names a trajectory column the metric needs (`biou`)."""

    pattern: str
    per_instance: InstanceFn
    aggregate: str = "mean"
    lower_is_better: bool = False
    fmt: str = ".3f"
    group: str = ""
    definition: str = ""
    source: str = ""
    instance_prefix: str | None = None
    requires: str | None = None
    origin: str = "bench.metrics"

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise MetricError(
                f"metric {self.pattern!r}: aggregate {self.aggregate!r} is not one of "
                f"{', '.join(AGGREGATES)}"
            )

    @property
    def regex(self) -> re.Pattern[str]:
        text = re.escape(self.pattern)
        for placeholder, group in PLACEHOLDERS.items():
            text = text.replace(re.escape(placeholder), group)
        return re.compile(text + r"\Z")

    @property
    def placeholder(self) -> str | None:
        return next((p for p in PLACEHOLDERS if p in self.pattern), None)


@dataclass(frozen=True)
class Metric:
    """A registry entry bound to one name (`NoC@95`: the NoC entry with threshold 0.95)."""

    name: str
    spec: MetricSpec
    param: float | int | None = None

    @property
    def lower_is_better(self) -> bool:
        return self.spec.lower_is_better

    @property
    def group(self) -> str:
        return self.spec.group

    @property
    def requires(self) -> str | None:
        return self.spec.requires

    @property
    def is_count(self) -> bool:
        return self.spec.aggregate == "count"

    @property
    def instance_column(self) -> str:
        """The per-instance column (`IoU@5` for `mIoU@5`; NoC and NoF keep their names)."""
        prefix = self.spec.instance_prefix
        if prefix is None:
            return self.name
        return prefix + self.name.split("@", 1)[1] if "@" in self.name else prefix

    def values(self, data: DatasetTrajectories) -> np.ndarray:
        out = np.asarray(self.spec.per_instance(data, self.param), dtype=np.float64)
        if out.shape != (len(data),):
            raise MetricError(
                f"metric {self.name} ({self.spec.origin}) returned shape {out.shape} for "
                f"{len(data)} instances of {data.dataset}"
            )
        return out

    def aggregate(self, values: np.ndarray) -> float:
        """The dataset's figure; NaN (unavailable) when any instance has no value."""
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0 or np.isnan(values).any():
            return math.nan
        if self.spec.aggregate == "count":
            return float(np.sum(values))
        if self.spec.aggregate == "float32-mean":
            return float32_mean(values)
        return float(np.mean(values))

    def format(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "unavailable"
        if self.spec.fmt == "d":
            return str(round(value))
        return format(value, self.spec.fmt)


def float32_mean(values: np.ndarray) -> float:
    """numpy's float32 mean over instances as the official `np.array(all_ious).mean(axis=0)`
    computes it for one click: a sequential float32 sum (an axis-0 reduction adds row after
    row), divided by the count in float32."""
    column = np.asarray(values, dtype=np.float32)
    total = np.cumsum(column, dtype=np.float32)[-1]
    return float(np.float32(total / np.float32(column.size)))


@dataclass
class _Registry:
    specs: dict[str, MetricSpec] = field(default_factory=dict)
    entry_points_loaded: bool = False

    def register(self, spec: MetricSpec) -> MetricSpec:
        taken = self.specs.get(spec.pattern)
        if taken is not None:
            raise MetricError(
                f"metric {spec.pattern!r} is already registered by {taken.origin}; "
                f"{spec.origin} registers it again"
            )
        self.specs[spec.pattern] = spec
        return spec

    def load_entry_points(self) -> None:
        if self.entry_points_loaded:
            return
        self.entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            origin = f"entry point {ep.name} = {ep.value}"
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken plugin must say which one
                raise MetricError(f"{origin} ({ENTRY_POINT_GROUP}) failed to load: {exc}") from exc
            specs = loaded() if callable(loaded) and not isinstance(loaded, MetricSpec) else loaded
            if isinstance(specs, MetricSpec):
                specs = [specs]
            for spec in specs:
                if not isinstance(spec, MetricSpec):
                    raise MetricError(
                        f"{origin} gave {type(spec).__name__}; expected a bench.metrics.MetricSpec"
                    )
                self.register(_with_origin(spec, origin))


def _with_origin(spec: MetricSpec, origin: str) -> MetricSpec:
    from dataclasses import replace

    return replace(spec, origin=origin)


REGISTRY = _Registry()


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Add a metric; a pattern registered twice is an error naming both sources."""
    return REGISTRY.register(spec)


def known_patterns() -> list[str]:
    REGISTRY.load_entry_points()
    return list(REGISTRY.specs)


def get_metric(name: str) -> Metric:
    """The registry entry that matches `name`, bound to its number (`NoC@95` -> 0.95)."""
    REGISTRY.load_entry_points()
    text = name.strip()
    for spec in REGISTRY.specs.values():
        match = spec.regex.match(text)
        if match is None:
            continue
        placeholder = spec.placeholder
        if placeholder is None:
            return Metric(text, spec, None)
        number = match.group(1)
        if placeholder == "<k>":
            k = int(number)
            if k < 1:
                raise MetricError(f"{name!r}: the click must be 1 or more")
            return Metric(text, spec, k)
        percent = float(number)
        if not 0 < percent <= 100:
            raise MetricError(f"{name!r}: the threshold must be a percentage in (0, 100]")
        return Metric(text, spec, percent / 100.0)
    raise MetricError(f"unknown metric {name!r}; known patterns: {', '.join(known_patterns())}")


def parse_metrics(text: str | Iterable[str]) -> list[Metric]:
    """`NoC@85,NoF@95,mIoU@5` (or a list of names) as bound metrics, in the order given."""
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in names if n and n.strip()]
    if not names:
        raise MetricError(f"no metric named; known patterns: {', '.join(known_patterns())}")
    return [get_metric(n) for n in dict.fromkeys(names)]
