"""What every deep adapter's registry factory shares: option parsing, the predictor object
handed to the harness, and the manifest record of its checkpoint and device.

The network-specific parts (building from a checkpoint config, the zoom-in rule) stay in each
family's `predictor.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bench.adapters.checkpoint import Checkpoint
from bench.adapters.common.eval_predictor import EvalPredictor, InstanceHandle
from bench.sample import Click, Sample

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
COMMON_OPTIONS = ("checkpoint", "device", "dtype", "trust_checkpoint", "zoom_in", "flip")


def flag(name: str, value: Any) -> bool:
    """A boolean option, also from its CLI spelling ("true"/"false", "1"/"0", "yes"/"no")."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off"}:
        return False
    raise ValueError(f"option {name}={value!r}: expected true or false")


@dataclass(frozen=True)
class DeepOptions:
    """The validated options of a deep adapter factory."""

    checkpoint: str
    device: torch.device
    dtype_name: str
    zoom_in: bool
    flip: bool
    trust_checkpoint: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.dtype_name]


def parse_options(
    name: str,
    options: dict[str, Any],
    *,
    checkpoint_files: tuple[str, ...] | list[str],
    download_page: str,
    extra: tuple[str, ...] = (),
) -> DeepOptions:
    """Validate factory options; a missing checkpoint names the official files and page."""
    allowed = COMMON_OPTIONS + extra
    unknown = set(options) - set(allowed)
    if unknown:
        raise TypeError(f"{name}: unknown options {sorted(unknown)}; known: {list(allowed)}")
    checkpoint = options.get("checkpoint")
    if not checkpoint:
        files = " or ".join(checkpoint_files)
        raise ValueError(
            f"{name} needs its official weights: pass checkpoint=PATH (CLI --checkpoint) to "
            f"{files}, downloadable from {download_page}"
        )
    dtype_name = options.get("dtype") or "float32"
    if dtype_name not in DTYPES:
        raise ValueError(f"{name}: dtype {dtype_name!r} is not one of {list(DTYPES)}")
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    return DeepOptions(
        checkpoint=str(checkpoint),
        device=torch.device(options.get("device") or default_device),
        dtype_name=dtype_name,
        zoom_in=flag("zoom_in", options.get("zoom_in", True)),
        flip=flag("flip", options.get("flip", True)),
        trust_checkpoint=flag("trust_checkpoint", options.get("trust_checkpoint", False)),
        extra={k: options[k] for k in extra if k in options},
    )


BATCHED_OPTIONS = ("forward_workers",)
"""Options of the batched evaluation predictor (`EvalPredictor.predict_batch`)."""


def forward_workers(name: str, options: DeepOptions) -> int | None:
    """The `forward_workers` option: instance forwards a batched call runs side by side on the
    CPU (`bench.adapters.common.cpu_parallel`); None = torch's thread count on the CPU, one
    forward per input shape on a GPU; 1 = one forward per input shape."""
    value = options.extra.get("forward_workers")
    if value is None or value == "":
        return None
    try:
        workers = int(value)
    except (TypeError, ValueError):
        workers = 0
    if workers < 1 or str(workers) != str(value).strip():
        raise ValueError(f"{name}: forward_workers={value!r}: expected a positive integer")
    return workers


def batched_record(workers: int | None, device: torch.device) -> dict[str, Any]:
    """How `predict_batch` runs the network, for the manifest."""
    if workers == 1 or (workers is None and device.type != "cpu"):
        rule = "one forward per input shape"
    else:
        count = "torch's thread count" if workers is None else str(workers)
        rule = f"one forward per instance, {count} side by side, one intra-op thread each"
    return {"forward_workers": workers, "rule": rule}


def checkpoint_record(ckpt: Checkpoint) -> dict[str, Any]:
    return {
        "checkpoint": str(ckpt.path),
        "checkpoint_sha256": ckpt.sha256,
        "checkpoint_weights_only": ckpt.weights_only,
        "strict_load": True,
    }


def runtime_record(options: DeepOptions) -> dict[str, Any]:
    """dtype and device, with the TF32 switches that change CUDA numerics (PROTOCOL.md 11.11)."""
    record: dict[str, Any] = {"dtype": options.dtype_name, "device": str(options.device)}
    if options.device.type == "cuda":
        record["tf32"] = {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
        }
    return record


class ModelPredictor:
    """`start(sample)` / `predict(clicks)` of one network, the batched `open_instance` /
    `predict_batch` (`bench.adapters.BatchPredictor`), and `describe()` for the manifest.

    `pipeline` is the shared evaluation predictor (transforms and per-instance state), `model`
    the network.
    """

    def __init__(
        self, model: torch.nn.Module, pipeline: EvalPredictor, description: dict[str, Any]
    ) -> None:
        self.model = model
        self.pipeline = pipeline
        self._description = description

    def start(self, sample: Sample) -> None:
        self.pipeline.start(sample)

    def predict(self, clicks: list[Click]) -> np.ndarray:
        return self.pipeline.predict(clicks)

    def open_instance(self, sample: Sample) -> InstanceHandle:
        return self.pipeline.open_instance(sample)

    def predict_batch(
        self, requests: Sequence[tuple[InstanceHandle, Sequence[Click]]]
    ) -> list[np.ndarray]:
        return self.pipeline.predict_batch(requests)

    def describe(self) -> dict[str, Any]:
        return dict(self._description)
