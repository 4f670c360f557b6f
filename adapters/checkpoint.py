"""Reading official RITM / SimpleClick checkpoints without the official `isegm` package.

Format (PROTOCOL.md §7.5, golden/README.md §1 and §6): `torch.save` of `{"state_dict", "config"}`
written by `isegm/utils/misc.py:save_checkpoint`; `config` is `{"class": "<dotted class>",
"params": {name: {"type": "builtin"|"class", "value", "specified"}}}` from
`isegm/utils/serialization.py:serialize`. A checkpoint may also be a list of such dicts, the first
being the main model (`isegm/inference/utils.py:load_is_model`).

SimpleClick checkpoints pickle a live `CrossEntropyLoss` module inside `head_params`, so they do not
load with `torch.load(weights_only=True)` as is. We register inert stand-ins for exactly those
`isegm.*` globals, which keeps the safe loader for every official file; anything else needs the
caller's explicit trust (`trust=True` -> `weights_only=False`).
"""

from __future__ import annotations

import hashlib
import pickle
import pickletools
import re
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

_LOSS_MODULE = "isegm.model.modeling.transformer_helper.cross_entropy_loss"


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message always names the file."""


class OfficialObjectStandIn:
    """Inert placeholder for an object of the official code found in a checkpoint's config.

    It only records the attributes the pickle sets; it has no behaviour, so unpickling one never
    runs official code. `official_name` is the dotted name of the class it replaces.
    """

    official_name = "isegm.<unknown>"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Only reached through REDUCE in trusted mode; NEWOBJ does not call __init__.
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"<stand-in for {self.official_name}>"


class CrossEntropyLossStandIn(OfficialObjectStandIn):
    official_name = f"{_LOSS_MODULE}.CrossEntropyLoss"


def cross_entropy_stand_in(*args: Any, **kwargs: Any) -> Any:
    """Stand-in for the official loss function referenced by the pickled loss object."""
    raise RuntimeError(f"stand-in for {_LOSS_MODULE}.cross_entropy: training code is not shipped")


cross_entropy_stand_in.official_name = f"{_LOSS_MODULE}.cross_entropy"  # type: ignore[attr-defined]

# Exactly the isegm globals listed in golden/manifests/simpleclick_*.json -> pickle_globals.
OFFICIAL_STAND_INS: dict[str, Any] = {
    f"{_LOSS_MODULE}.CrossEntropyLoss": CrossEntropyLossStandIn,
    f"{_LOSS_MODULE}.cross_entropy": cross_entropy_stand_in,
}


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    sha256: str
    state_dict: dict[str, torch.Tensor]
    config: dict
    weights_only: bool


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _stand_in_for(dotted: str) -> Any:
    """A generic inert class for an `isegm.*` global we did not anticipate (trusted mode only)."""
    if dotted in OFFICIAL_STAND_INS:
        return OFFICIAL_STAND_INS[dotted]
    return type(dotted.rpartition(".")[2], (OfficialObjectStandIn,), {"official_name": dotted})


class _IsegmMappingUnpickler(pickle.Unpickler):
    """Full unpickler for trusted files that maps `isegm.*` globals to inert stand-ins."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "isegm" or module.startswith("isegm."):
            return _stand_in_for(f"{module}.{name}")
        return super().find_class(module, name)


_TRUSTED_PICKLE_MODULE = types.ModuleType("iseg_bench_trusted_pickle")
_TRUSTED_PICKLE_MODULE.Unpickler = _IsegmMappingUnpickler  # type: ignore[attr-defined]
_TRUSTED_PICKLE_MODULE.load = pickle.load  # type: ignore[attr-defined]


def _unsupported_global(error: Exception) -> str | None:
    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    return match.group(1) if match else None


def _pickle_bytes(path: Path) -> bytes:
    """The pickle program of a checkpoint: `*/data.pkl` of a torch zip, else the whole file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            return archive.read(names[0]) if names else b""
    return path.read_bytes()


def pickle_globals(data: bytes) -> list[str]:
    """Dotted names of every global a pickle program imports, read without running it.

    `pickletools.genops` only parses opcodes. Legacy torch files hold several pickles back to
    back, so parsing goes on after each STOP; STACK_GLOBAL takes its two names from the
    strings pushed just before it (names fetched from the memo are shown as `?`).
    """
    found: list[str] = []
    position = 0
    while position < len(data):
        strings: list[str] = []
        try:
            for op, arg, pos in pickletools.genops(data[position:]):
                if op.name == "GLOBAL":
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL":
                    module, name = (["?", "?"] + strings)[-2:]
                    found.append(f"{module}.{name}")
                elif "UNICODE" in op.name or op.name.endswith("STRING"):
                    strings.append(str(arg))
                elif op.name in ("BINGET", "LONG_BINGET", "GET"):
                    strings.append("?")
                if op.name == "STOP":
                    position += pos + 1
                    break
            else:
                break
        except (ValueError, EOFError):  # trailing tensor bytes of a legacy file, or garbage
            break
    return list(dict.fromkeys(found))


def _code_calls(path: Path) -> list[str]:
    """Globals of the file that torch's safe loader refuses, i.e. code the pickle would run."""
    try:
        names = pickle_globals(_pickle_bytes(path))
    except (OSError, zipfile.BadZipFile, KeyError):
        return []
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals()) | set(OFFICIAL_STAND_INS)
    except (ImportError, AttributeError):  # private API moved: treat non-torch names as foreign
        allowed = set(OFFICIAL_STAND_INS)
        names = [n for n in names if not n.startswith(("torch.", "collections.OrderedDict"))]
    return [n for n in names if n not in allowed]


def _torch_reason(error: Exception) -> str:
    """The specific line of torch's weights-only error, without its generic preamble."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    specific = [line for line in lines if re.search(r"[Uu]nsupported|GLOBAL", line)]
    return f" (torch: {specific[0]})" if specific else ""


def _refusal(path: Path, error: Exception) -> CheckpointError | None:
    """A clear refusal when the safe load failed because the pickle needs foreign globals."""
    calls = _code_calls(path)
    if not calls:
        return None
    shown = ", ".join(calls[:5]) + (f" (and {len(calls) - 5} more)" if len(calls) > 5 else "")
    return CheckpointError(
        f"{path}: refused: the checkpoint's pickle needs {shown}, which unpickling would import "
        "and call. A pickle can run any code while it loads (e.g. a `__reduce__` payload), so "
        "the safe loader (torch.load weights_only=True, with stand-ins only for the known "
        "SimpleClick loss objects) does not allow it; nothing in the file was executed. If the "
        "file comes from a trusted source, pass --trust-checkpoint (option "
        f"trust_checkpoint=True) to load it with weights_only=False.{_torch_reason(error)}"
    )


def _torch_load(path: Path, trust: bool) -> Any:
    if trust:
        return torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_TRUSTED_PICKLE_MODULE
        )
    # Official names, plus our own names so that a checkpoint re-saved by us still reads.
    stand_ins = [(obj, name) for name, obj in OFFICIAL_STAND_INS.items()]
    stand_ins += list(OFFICIAL_STAND_INS.values())
    with torch.serialization.safe_globals(stand_ins):
        return torch.load(path, map_location="cpu", weights_only=True)


def _main_entry(path: Path, loaded: Any) -> tuple[dict[str, torch.Tensor], dict]:
    if isinstance(loaded, list | tuple):
        if not loaded:
            raise CheckpointError(f"{path}: checkpoint is an empty list")
        loaded = loaded[0]  # multi-stage "click models": the first entry is the main model
    if not isinstance(loaded, dict):
        raise CheckpointError(
            f"{path}: not an RITM/SimpleClick checkpoint (top level is {type(loaded).__name__}, "
            "expected a dict with 'state_dict' and 'config')"
        )
    if "state_dict" in loaded:
        state_dict, config = loaded["state_dict"], loaded.get("config") or {}
    elif loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        state_dict, config = loaded, {}  # a bare state_dict: usable, but carries no config
    else:
        keys = ", ".join(map(str, list(loaded)[:8]))
        raise CheckpointError(
            f"{path}: not an RITM/SimpleClick checkpoint (no 'state_dict' key; top-level keys: "
            f"{keys})"
        )
    if not isinstance(state_dict, dict) or not all(
        isinstance(v, torch.Tensor) for v in state_dict.values()
    ):
        raise CheckpointError(f"{path}: 'state_dict' is not a mapping of names to tensors")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: 'config' is {type(config).__name__}, expected a dict")
    return dict(state_dict), config


def read_checkpoint(path: str | Path, *, trust: bool = False) -> Checkpoint:
    """Load an official checkpoint on the CPU, safely unless `trust` is given.

    `trust=True` (CLI `--trust-checkpoint`, option `trust_checkpoint=True`) unpickles with
    `weights_only=False`, which can run arbitrary code: only for files from a trusted source.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        loaded = _torch_load(path, trust)
    except pickle.UnpicklingError as error:
        needed = _unsupported_global(error)
        if not trust and (refusal := _refusal(path, error)) is not None:
            raise refusal from error
        if needed is None or trust:
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from error
        raise CheckpointError(
            f"{path}: the checkpoint's pickle needs the global {needed!r}, which the safe loader "
            "(torch.load weights_only=True with stand-ins for the known SimpleClick loss objects) "
            "does not allow, because unpickling it could run arbitrary code. If the file comes "
            "from a trusted source, pass --trust-checkpoint (option trust_checkpoint=True) to "
            "load it with weights_only=False."
        ) from error
    except Exception as error:  # zip/format errors from torch.load: report, don't traceback
        if not trust and (refusal := _refusal(path, error)) is not None:
            raise refusal from error
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint ({type(error).__name__}: {error})"
        ) from error
    state_dict, config = _main_entry(path, loaded)
    return Checkpoint(
        path=path,
        sha256=file_sha256(path),
        state_dict=state_dict,
        config=config,
        weights_only=not trust,
    )


def config_params(checkpoint: Checkpoint) -> dict[str, Any]:
    """`{name: value}` of the saved constructor parameters (`config['params']` records).

    Class-valued parameters stay dotted strings, as saved; callers decide what they map to.
    """
    params = checkpoint.config.get("params")
    if not isinstance(params, dict):
        raise CheckpointError(f"{checkpoint.path}: the checkpoint carries no config['params']")
    values = {}
    for name, record in params.items():
        if not isinstance(record, dict) or "value" not in record:
            raise CheckpointError(f"{checkpoint.path}: config parameter {name!r} has no value")
        values[name] = record["value"]
    return values


def config_class(checkpoint: Checkpoint) -> str:
    return str(checkpoint.config.get("class", ""))


def check_config_class(
    checkpoint: Checkpoint, expected: str, *, architecture: str, download_page: str
) -> None:
    """Refuse a checkpoint whose saved config names another model class (e.g. RITM vs ViT)."""
    found = config_class(checkpoint)
    if found and found != expected:
        raise CheckpointError(
            f"{checkpoint.path}: this is a checkpoint of {found}, not of {architecture} "
            f"({expected}); official {architecture} checkpoints: {download_page}"
        )


def _first(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def state_dict_mismatch(
    expected: dict[str, torch.Size], found: dict[str, torch.Tensor]
) -> tuple[list[str], list[str], list[str]]:
    """(missing keys, unexpected keys, 'name: checkpoint shape vs model shape') in model order."""
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    shapes = [
        f"{name}: checkpoint {tuple(found[name].shape)} vs model {tuple(shape)}"
        for name, shape in expected.items()
        if name in found and tuple(found[name].shape) != tuple(shape)
    ]
    return missing, unexpected, shapes


def load_state_dict_strict(
    model: torch.nn.Module,
    state_dict: dict[str, torch.Tensor],
    *,
    architecture: str,
    download_page: str,
    path: str | Path,
) -> None:
    """`model.load_state_dict(strict=True)` with an error a user can act on.

    SimpleClick loads strictly (`isegm/inference/utils.py:load_is_model`); we do so for RITM too,
    since its released checkpoints match the architecture exactly (golden/README.md §1).
    """
    expected = {name: tensor.shape for name, tensor in model.state_dict().items()}
    missing, unexpected, shapes = state_dict_mismatch(expected, state_dict)
    if missing or unexpected or shapes:
        parts = [f"{path}: checkpoint does not match the {architecture} architecture"]
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_first(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_first(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es): {_first(shapes, 3)}")
        parts.append(f"expected an official {architecture} checkpoint from {download_page}")
        raise CheckpointError("; ".join(parts))
    model.load_state_dict(state_dict, strict=True)


def jsonable(value: Any) -> Any:
    """A saved config value in the JSON encoding of golden/manifests (for run manifests/tests).

    Tuples -> `{"__tuple__": [...]}`, official objects -> `{"__object__", "attributes"}` (public
    attributes, sorted), functions -> `{"__function__": dotted name}`.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {"__tuple__": [jsonable(v) for v in value]}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, OfficialObjectStandIn):
        attributes = {k: v for k, v in sorted(vars(value).items()) if not k.startswith("_")}
        return {"__object__": value.official_name, "attributes": jsonable(attributes)}
    if callable(value) and hasattr(value, "official_name"):
        return {"__function__": value.official_name}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)
