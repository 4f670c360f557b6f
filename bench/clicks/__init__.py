"""Click models: who clicks where next. A registry that is a dict, one plain function each.

A click model is `model(errors, clicks, context) -> Click | None`:
- `errors`: false negatives / false positives of the current prediction on valid pixels
  (`bench.protocol.Errors`; before the first click the prediction is empty, so FN = object);
- `clicks`: every click so far, in order;
- `context`: the instance (dataset, sample id, ground truth target, image) and its own random
  generator, seeded from `--seed`, the dataset and the sample id alone. A model that draws
  only from `context.rng` therefore gives the same clicks in a batched, sharded, resumed or
  torchrun run as in a plain one.
Returning None ends the instance early (a recorded session that ran out of clicks).

A model whose clicks follow from the image's earlier objects (RClicks seeds its generator once
per image, and the objects of the image take turns on it) sets `model.objects_in_order = True`
and keeps that state in `context.image_state`, a dict shared by the instances of one dataset
entry. The engine then evaluates those instances one after another, in listing order, each to
its end before the next one's first click (other entries still fill the batch). Entries are
never split by shards or resume, so such a model is as reproducible as one using `rng`.

`--click-model NAME[:ARG,k=v,...]` picks one; factories are named by import path and imported
on use, like the model registry. `official` is the default and is the bit-exact official rule.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench import protocol
from bench.options import parse_value
from bench.sample import Click


@dataclass(frozen=True, eq=False)
class ClickContext:
    """What a click model may know about the instance besides the current errors."""

    dataset: str
    sample_id: str
    target: protocol.Target
    rng: np.random.Generator = field(repr=False)
    image: np.ndarray | None = field(default=None, repr=False)  # H x W x 3 uint8 RGB
    # Shared by every instance of the same entry (image) in a run; see `objects_in_order`.
    image_state: dict[Any, Any] = field(default_factory=dict, repr=False)


ClickModel = Callable[[protocol.Errors, Sequence[Click], ClickContext], "Click | None"]


def objects_in_order(model: ClickModel) -> bool:
    """Whether the model needs an entry's instances evaluated one after another (see above)."""
    return bool(getattr(model, "objects_in_order", False))


CLICK_MODELS: dict[str, str] = {
    "official": "bench.clicks:official",
    "jitter": "bench.clicks.simulated:jitter",
    "random-in-error": "bench.clicks.simulated:random_in_error",
    "border-distance": "bench.clicks.simulated:border_distance",
    "first-click-random": "bench.clicks.simulated:first_click_random",
    "replay": "bench.clicks.replay:replay",
    "rclicks": "bench.clicks.rclicks:rclicks",
}
"""Name -> `module:factory`; the factory takes the parsed options and returns a ClickModel."""

CLICK_MODEL_ORIGINS: dict[str, str] = dict.fromkeys(CLICK_MODELS, "bench.clicks")


class ClickModelNameError(ValueError):
    """A click-model name registered twice; the message names both sources."""


def register_click_model(name: str, factory: str, origin: str | None = None) -> None:
    """Add a click model (`name` -> `module:factory`); a taken name is refused."""
    origin = origin or sys._getframe(1).f_globals.get("__name__", "?")
    if name in CLICK_MODELS:
        raise ClickModelNameError(
            f"click model {name!r} is already registered by {CLICK_MODEL_ORIGINS[name]} "
            f"({CLICK_MODELS[name]}); {origin} registers it again ({factory})"
        )
    if ":" in name or "," in name or not name.strip():
        raise ValueError(f"click model name {name!r}: must be non-empty, without ':' or ','")
    CLICK_MODELS[name] = factory
    CLICK_MODEL_ORIGINS[name] = origin


@dataclass(frozen=True)
class ClickModelSpec:
    """A parsed `--click-model` value: name, positional arguments and options, as recorded."""

    name: str = "official"
    args: tuple[Any, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "args": list(self.args), "options": dict(self.options)}

    def __str__(self) -> str:
        parts = [str(a) for a in self.args] + [f"{k}={v}" for k, v in self.options]
        return self.name + (":" + ",".join(parts) if parts else "")


def parse_click_model(text: str) -> ClickModelSpec:
    """`jitter:sigma=5` -> spec; `replay:clicks.jsonl,after=official` has one positional arg."""
    name, _, rest = text.strip().partition(":")
    if name not in CLICK_MODELS:
        raise ValueError(f"unknown click model {name!r}; known: {', '.join(CLICK_MODELS)}")
    args: list[Any] = []
    options: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if sep:
            options[key.strip()] = parse_value(value.strip())
        else:
            args.append(item)
    return ClickModelSpec(name, tuple(args), tuple(sorted(options.items())))


def make_click_model(spec: ClickModelSpec | str) -> ClickModel:
    if isinstance(spec, str):
        spec = parse_click_model(spec)
    module_name, _, attr = CLICK_MODELS[spec.name].partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    try:
        return factory(*spec.args, **dict(spec.options))
    except TypeError as exc:
        raise ValueError(f"click model {spec}: {exc}") from None


def instance_rng(seed: int, dataset: str, sample_id: str) -> np.random.Generator:
    """A generator that depends on the seed and the instance only (never on run order).

    The instance key is hashed with sha256 (Python's `hash` is salted per process).
    """
    digest = hashlib.sha256(f"{dataset}\0{sample_id}".encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, *words]))


def official(**options: Any) -> ClickModel:
    """The official clicker (RITM/SimpleClick `isegm/inference/clicker.py`), bit-exact."""
    if options:
        raise TypeError(f"takes no options, got {sorted(options)}")

    def model(errors: protocol.Errors, clicks: Sequence[Click], ctx: ClickContext) -> Click:
        return protocol.next_click_from_errors(errors, [(c.y, c.x) for c in clicks])

    return model
