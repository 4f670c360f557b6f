"""Click parameter types that refuse values a run could not use, before anything is loaded or
created: a NaN or infinite number passes click's own `FloatRange` (every comparison with NaN
is false), so numbers are checked for being finite first."""

from __future__ import annotations

import math
from typing import Any

import click


class BoundedFloat(click.ParamType):
    """A finite float in an interval; `low_open` / `high_open` exclude the ends."""

    name = "float"

    def __init__(
        self, low: float, high: float, *, low_open: bool = False, high_open: bool = False
    ) -> None:
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def describe(self) -> str:
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"a number in {left}{self.low:g}, {self.high:g}{right}"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"FLOAT {'(' if self.low_open else '['}{self.low:g}, {self.high:g}" + (
            ")" if self.high_open else "]"
        )

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number; expected {self.describe()}", param, ctx)
            if not math.isfinite(number):
                self.fail(f"{value!r} is not finite; expected {self.describe()}", param, ctx)
        too_low = number <= self.low if self.low_open else number < self.low
        too_high = number >= self.high if self.high_open else number > self.high
        if too_low or too_high:
            self.fail(f"{value} is outside {self.describe()[len('a number in ') :]}", param, ctx)
        return number


PROBABILITY_THRESHOLD = BoundedFloat(0.0, 1.0, high_open=True)
"""`--pred-thr`: the map is binarised with `> thr`, so 1 (or more) would predict nothing."""

IOU_TARGET = BoundedFloat(0.0, 1.0, low_open=True)
"""`--stop-at-iou`: an IoU a prediction can reach; 0 or less would stop after click 1."""
