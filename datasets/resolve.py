"""`--datasets` text -> `DatasetSpec`: registered names, entry points, own data, plugins.

The forms, tried in this order:
- a registered name (`grabcut`), then an entry point of the group `iseg_bench.datasets`
  (a third-party package's `name = "pkg.mod:function"`);
- `folder:PATH[,k=v,...]`: images and masks with matching stems (`bench.datasets.folder`);
- `coco:ANNOTATIONS.json[,images=DIR,...]`: a COCO instance file (`bench.datasets.coco`);
- `pkg.mod:function[,k=v,...]` or `path/to/file.py:function[,k=v,...]`: a plugin function,
  called with the options, that returns a `DatasetSpec` exactly as the built-ins register.

A name is taken once: an entry point under a built-in's name, two entry points with one name,
or an own dataset named like a registered one is refused with both sources named, so that a
result is never labelled with another dataset's name.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import replace
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from bench.datasets import DATASETS, DatasetNameError, DatasetSpec
from bench.options import parse_pairs

ENTRY_POINT_GROUP = "iseg_bench.datasets"

_OPTION = re.compile(r"[A-Za-z_][\w-]*=")


def split_specs(text: str) -> tuple[str, ...]:
    """Comma-separated specs; a `key=value` item is an option of the spec before it."""
    specs: list[str] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if _OPTION.match(item) and specs:
            specs[-1] += "," + item
        elif _OPTION.match(item):
            raise ValueError(f"--datasets {text!r}: option {item!r} follows no dataset")
        else:
            specs.append(item)
    return tuple(specs)


def _origin(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    where = f" (distribution {dist.name})" if dist is not None else ""
    return f"entry point {ep.name} = {ep.value}{where}"


def dataset_entry_points() -> dict[str, EntryPoint]:
    """Installed dataset plugins by name; a name already taken is refused, naming both."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        name = ep.name.strip().lower()
        taken = DATASETS.get(name)
        if taken is not None:
            raise DatasetNameError(
                f"dataset {name!r} is already registered by {taken.origin}; "
                f"{_origin(ep)} registers it again"
            )
        if name in found:
            raise DatasetNameError(
                f"dataset {name!r} is already registered by {_origin(found[name])}; "
                f"{_origin(ep)} registers it again"
            )
        found[name] = ep
    return found


def _checked(spec: Any, origin: str, name: str | None = None) -> DatasetSpec:
    if not isinstance(spec, DatasetSpec):
        raise TypeError(
            f"dataset plugin {origin} returned a {type(spec).__name__}; expected a "
            "bench.datasets.DatasetSpec"
        )
    if name is not None and spec.name != name:
        spec = replace(spec, name=name)
    return replace(spec, origin=spec.origin or origin)


def load_entry_point(ep: EntryPoint) -> DatasetSpec:
    """Call an entry point's function; its spec takes the entry point's name."""
    return _checked(ep.load()(), _origin(ep), ep.name.strip().lower())


def all_datasets() -> dict[str, DatasetSpec]:
    """Built-in datasets, then installed plugins (each plugin's function is called)."""
    plugins = {name: load_entry_point(ep) for name, ep in dataset_entry_points().items()}
    return {**DATASETS, **plugins}


def _load_file_attr(file: Path, attr: str) -> Any:
    if not file.is_file():
        raise FileNotFoundError(f"{file}: dataset plugin file does not exist")
    module_name = f"iseg_bench_dataset_plugin_{abs(hash(str(file)))}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ValueError(f"{file}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    if not hasattr(module, attr):
        raise ValueError(f"{file} defines no {attr!r}")
    return getattr(module, attr)


def _plugin(target: str, options: dict[str, Any]) -> DatasetSpec:
    where, _, attr = target.rpartition(":")
    if not where or not attr:
        raise ValueError(f"dataset plugin {target!r}: expected 'pkg.module:function'")
    if where.endswith(".py") or "/" in where or Path(where).is_file():
        function = _load_file_attr(Path(where).resolve(), attr)
    else:
        module = importlib.import_module(where)
        if not hasattr(module, attr):
            raise ValueError(f"{where} has no attribute {attr!r}")
        function = getattr(module, attr)
    spec = _checked(function(**options), target)
    if DATASETS.get(spec.name) is not spec:
        refuse_taken(spec.name, f"plugin {target}")
    return spec


def refuse_taken(name: str, origin: str) -> None:
    """An unregistered dataset (own data, plugin) may not take a registered name or folder.

    The folder matters too: own data is labelled with its name (`Sample.dataset`), on which
    official predictors switch per-dataset settings (SimpleClick's DAVIS zoom-in).
    """
    for spec in DATASETS.values():
        if name.lower() in (spec.name, spec.folder.lower()):
            raise DatasetNameError(
                f"dataset {name!r} is already registered by {spec.origin} (as {spec.name!r}, "
                f"folder {spec.folder!r}); {origin} registers it again: choose another name "
                "(name=...)"
            )
    plugins = dataset_entry_points()
    if name.lower() in plugins:
        raise DatasetNameError(
            f"dataset {name!r} is already registered by {_origin(plugins[name.lower()])}; "
            f"{origin} registers it again: choose another name (name=...)"
        )


def resolve_dataset(text: str) -> DatasetSpec:
    """One `--datasets` item (see the module docstring) -> its spec."""
    head, *rest = text.strip().split(",")
    key = head.strip().lower()
    plugins = dataset_entry_points()  # refuses an entry point under a built-in name
    options = parse_pairs(rest, f"--datasets {text!r}")
    known = DATASETS.get(key) or (load_entry_point(plugins[key]) if key in plugins else None)
    if known is not None and not options:
        return known
    if known is not None:
        if known.options is None:
            raise ValueError(f"--datasets {text!r}: dataset {known.name!r} takes no options")
        try:
            return known.options(known, **options)
        except TypeError as exc:
            raise ValueError(f"--datasets {text!r}: {exc}") from None
    kind, sep, target = head.strip().partition(":")
    if sep and kind == "folder":
        from bench.datasets.folder import folder_dataset

        return folder_dataset(Path(target), options, text.strip())
    if sep and kind == "coco":
        from bench.datasets.coco import coco_dataset

        return coco_dataset(Path(target), options, text.strip())
    if sep:
        return _plugin(head.strip(), options)
    known = ", ".join(sorted({*DATASETS, *plugins}))
    raise KeyError(
        f"unknown dataset {text!r}; known datasets: {known}; or give your own data as "
        "folder:PATH or coco:ANNOTATIONS.json, or a plugin as pkg.module:function or "
        "file.py:function"
    )
