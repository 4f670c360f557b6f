"""Model registry: a dict from CLI name to a `ModelSpec`, plus `--model` resolution.

Factories are named by import path and imported only when a run needs them, so listing
models never imports torch. A factory is called with the options the user gave
(`checkpoint`, `device`, `dtype`, `--model-option k=v`) and returns a predictor with
`start(sample)` and `predict(clicks) -> H x W float probability map`. The sample is a
`SampleView` (no ground truth) unless the predictor declares `oracle = True`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench.sample import Click, SampleView

ENTRY_POINT_GROUP = "iseg_bench.models"


class Predictor(Protocol):
    def start(self, sample: SampleView) -> None: ...

    def predict(self, clicks: list[Click]) -> np.ndarray: ...


class BatchPredictor(Protocol):
    """The optional batched interface a predictor may add to `start`/`predict`.

    The batched engine keeps up to `--batch-size` instances in flight. Their per-instance
    state lives in the handle `open_instance` returns (never in the predictor), so that one
    network call can serve all of them:
    - `open_instance(sample) -> handle`: what `start` does, for one more instance in flight;
    - `predict_batch([(handle, clicks), ...]) -> [H x W probability map, ...]`: one click of
      each listed instance (each its own clicks so far), in the order given. A handle appears
      at most once per call. A call that raises changes no handle, so the engine can retry
      its items one by one to find the failing instance and keep the others.
    Instances of one dataset only are in flight at a time (the engine drains between
    datasets), so per-dataset settings such as SimpleClick's DAVIS 672 input stay valid.
    Predictors without these methods run one instance at a time through `start`/`predict`.
    """

    def open_instance(self, sample: SampleView) -> Any: ...

    def predict_batch(
        self, requests: Sequence[tuple[Any, Sequence[Click]]]
    ) -> list[np.ndarray]: ...


def supports_batch(predictor: Any) -> bool:
    """True when `predictor` offers the batched interface (`BatchPredictor`)."""
    return all(callable(getattr(predictor, m, None)) for m in ("open_instance", "predict_batch"))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    factory: str | Callable[..., Predictor]  # "package.module:function" or a callable
    family: str = "plugin"
    needs_weights: bool = False
    description: str = ""
    input_size: str = ""
    params_m: float | None = None  # paper Table 5 convention (thop) where it applies
    checkpoint_files: tuple[str, ...] = ()
    download_page: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # who registered it: a module, or "entry point NAME = VALUE (dist)"


class ModelNameError(ValueError):
    """A model name registered twice; the message names both sources."""


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec, origin: str | None = None) -> ModelSpec:
    """Add a model under its name; a taken name is refused (never overwritten)."""
    origin = origin or spec.origin or sys._getframe(1).f_globals.get("__name__", "?")
    taken = MODELS.get(spec.name)
    if taken is not None:
        raise ModelNameError(
            f"model {spec.name!r} is already registered by {taken.origin}; "
            f"{origin} registers it again"
        )
    spec = replace(spec, origin=origin)
    MODELS[spec.name] = spec
    return spec


def _import_attr(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"{path!r}: expected 'package.module:factory'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{module_name} has no attribute {attr!r}") from None


def _import_file_attr(path: str) -> Any:
    file_part, _, attr = path.rpartition(":")
    file = Path(file_part).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"{file}: model file does not exist")
    module_name = f"iseg_bench_plugin_{abs(hash(str(file)))}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    if not hasattr(module, attr):
        raise ValueError(f"{file} defines no {attr!r}")
    return getattr(module, attr)


def _entry_point_origin(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return f"entry point {ep.name} = {ep.value}" + (f" (distribution {dist.name})" if dist else "")


def _entry_point_specs() -> dict[str, ModelSpec]:
    """Installed model plugins; a name a built-in or another plugin has is refused."""
    found: dict[str, ModelSpec] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = _entry_point_origin(ep)
        taken = MODELS.get(ep.name) or found.get(ep.name)
        if taken is not None:
            raise ModelNameError(
                f"model {ep.name!r} is already registered by {taken.origin}; "
                f"{origin} registers it again"
            )
        found[ep.name] = ModelSpec(ep.name, factory=ep.value, family="plugin", origin=origin)
    return found


def all_models() -> dict[str, ModelSpec]:
    """Built-in models and those third-party packages register through entry points."""
    return {**MODELS, **_entry_point_specs()}


def plugin_file(spec: ModelSpec) -> Path | None:
    """The source file of a plugin model (`file.py:factory`, or the module of
    `pkg.mod:factory` and of an entry point), whose hash a run records; None for built-ins."""
    if spec.family != "plugin":
        return None
    if "file" in spec.extra:
        return Path(spec.extra["file"])
    if isinstance(spec.factory, str):
        module = spec.factory.partition(":")[0]
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
        if found is not None and found.origin and Path(found.origin).is_file():
            return Path(found.origin)
    return None


def resolve_model(name: str) -> ModelSpec:
    """`--model` value -> spec: registered name, `pkg.mod:factory`, or `file.py:factory`.

    A file plugin is named by its resolved path (`/abs/plug/x.py:make`), so that `./plug/x.py`
    and the absolute spelling are the same model for resume; its factory is that same text."""
    models = all_models()
    if name in models:
        return models[name]
    if ":" in name:
        file_part, _, attr = name.rpartition(":")
        if ".py:" in file_part:
            raise ValueError(
                f"--model {name!r}: expected FILE.py:FACTORY with one colon "
                f"(a factory name cannot hold ':')"
            )
        if file_part.endswith(".py") or "/" in file_part or Path(file_part).is_file():
            file = Path(file_part).resolve()
            if not file.is_file():
                raise FileNotFoundError(f"{file}: model file does not exist (--model {name})")
            canonical = f"{file}:{attr}"
            return ModelSpec(
                name=canonical,
                factory=partial_file(canonical),
                family="plugin",
                extra={"file": str(file), "factory": canonical},
            )
        if not attr or not file_part:
            raise ValueError(f"--model {name!r}: expected package.module:factory")
        return ModelSpec(name=name, factory=name, family="plugin")
    known = ", ".join(sorted(models))
    raise KeyError(
        f"unknown model {name!r}; use a registered name ({known}), "
        "'package.module:factory' or 'path/to/file.py:factory'"
    )


def partial_file(path: str) -> Callable[..., Predictor]:
    def factory(**options: Any) -> Predictor:
        return _import_file_attr(path)(**options)

    return factory


def make_predictor(spec: ModelSpec, **options: Any) -> Predictor:
    factory = _import_attr(spec.factory) if isinstance(spec.factory, str) else spec.factory
    predictor = factory(**options)
    for method in ("start", "predict"):
        if not callable(getattr(predictor, method, None)):
            raise TypeError(f"model {spec.name!r}: the predictor has no {method}() method")
    return predictor


# Built-in models register themselves here (cheap modules: no torch import at this point).
from bench.adapters import catalog  # noqa: E402,F401
