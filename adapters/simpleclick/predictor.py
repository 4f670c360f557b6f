"""Registry factories for the SimpleClick ViT models: checkpoint -> evaluation-time predictor.

The predictor is the official NoC-evaluation one of SimpleClick v1.0 (`scripts/evaluate_model.py`,
`--eval-mode cvpr`, NoBRS; PROTOCOL.md §5, §6): ZoomIn with `skip_clicks=-1` resizing every
click's region to exactly 448 x 448 (672 x 672 on DAVIS), horizontal-flip averaging, and the
position embedding resized (bicubic) from the trained grid whenever the dataset changes, as the
script does with `interpolate_pos_embed_inference` on a freshly loaded model per dataset
(`isegm/model/modeling/pos_embed.py`). The shared `EvalPredictor` does the transforms.

Checkpoints are read with `torch.load(weights_only=True)` plus inert stand-ins for the pickled
loss object (`bench.adapters.checkpoint`) and loaded strictly, like the official
`isegm/inference/utils.py:load_is_model`.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.adapters.checkpoint import (
    CheckpointError,
    check_config_class,
    config_params,
    load_state_dict_strict,
    read_checkpoint,
)
from bench.adapters.common.eval_predictor import (
    EvalPredictor,
    ZoomInConfig,
    simpleclick_cvpr_zoom_in,
)
from bench.adapters.simpleclick.models import ARCHITECTURES, CHECKPOINT_FILES, DOWNLOAD_PAGE
from bench.adapters.simpleclick.network import (
    VARIANTS,
    PlainViTConfig,
    PlainViTModel,
    config_from_params,
    set_input_size,
)
from bench.sample import Click, Sample

__all__ = [
    "SimpleClickPredictor",
    "load_plainvit",
    "make_simpleclick_predictor",
    "make_vit_b",
    "make_vit_b224",
    "make_vit_h",
    "make_vit_l",
    "make_vit_xt",
]

OFFICIAL_CLASS = "isegm.model.is_plainvit_model.PlainVitModel"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
OPTIONS = ("checkpoint", "device", "dtype", "trust_checkpoint", "zoom_in", "flip", "input_size")
WHOLE_IMAGE = 10**9
"""`min_crop_size` that makes every ZoomIn region the whole image (zoom-in ablation)."""


def _architecture_key(config: PlainViTConfig) -> tuple:
    return (config.patch_size, config.embed_dim, config.depth, config.num_heads)


def load_plainvit(
    variant: str, checkpoint: str | Path, trust: bool = False
) -> tuple[PlainViTModel, dict[str, Any], torch.Tensor]:
    """Build `variant` from an official checkpoint and load it strictly (CPU, eval mode).

    The head's `channels`/`upsample` and the rest of the architecture come from the checkpoint's
    saved config (PROTOCOL.md §7.2); a checkpoint of another ViT size or another model family is
    refused with a message saying which. Returns the model, a record of the file, and the
    pristine trained `pos_embed` every inference-size resize starts from.
    """
    architecture = ARCHITECTURES[variant]
    ckpt = read_checkpoint(checkpoint, trust=trust)
    expected = VARIANTS[variant]
    config = expected
    if ckpt.config:
        check_config_class(
            ckpt, OFFICIAL_CLASS, architecture=architecture, download_page=DOWNLOAD_PAGE
        )
        try:
            config = config_from_params(config_params(ckpt))
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{ckpt.path}: {error}") from None
        if _architecture_key(config) != _architecture_key(expected):
            found = next(
                (
                    n
                    for n, c in VARIANTS.items()
                    if _architecture_key(c) == _architecture_key(config)
                ),
                None,
            )
            hint = f"; use model simpleclick-{_MODEL_SUFFIX[found]}" if found else ""
            raise CheckpointError(
                f"{ckpt.path}: this checkpoint is a ViT with patch {config.patch_size}, width "
                f"{config.embed_dim}, depth {config.depth}, not {architecture}{hint}"
            )
    model = PlainViTModel(config)
    load_state_dict_strict(
        model,
        ckpt.state_dict,
        architecture=architecture,
        download_page=DOWNLOAD_PAGE,
        path=ckpt.path,
    )
    model.eval().requires_grad_(False)
    record = {
        "checkpoint": str(ckpt.path),
        "checkpoint_sha256": ckpt.sha256,
        "checkpoint_weights_only": ckpt.weights_only,
        "strict_load": True,
    }
    return model, record, ckpt.state_dict["backbone.pos_embed"].detach().clone().float()


_MODEL_SUFFIX = {"xtiny": "vit-xt", "base": "vit-b", "large": "vit-l", "huge": "vit-h"}


def _flag(name: str, value: Any) -> bool:
    """A boolean option, also from its CLI spelling ("true"/"false", "1"/"0", "yes"/"no")."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off"}:
        return False
    raise ValueError(f"option {name}={value!r}: expected true or false")


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def zoom_rule(input_size: int | None, zoom_in: bool):
    """dataset -> ZoomInConfig of the evaluation mode.

    `input_size` None: `--eval-mode cvpr` (448, 672 on DAVIS); N: `--eval-mode fixedN` (N x N on
    every dataset, PROTOCOL.md §5). `zoom_in=False` keeps the same network input size but makes
    the region the whole image at every click (ablation; no official counterpart).
    """

    def rule(dataset: str) -> ZoomInConfig:
        if input_size is None:
            config = simpleclick_cvpr_zoom_in(dataset)
        else:
            config = ZoomInConfig(target_size=(input_size, input_size), skip_clicks=-1)
        return config if zoom_in else replace(config, min_crop_size=WHOLE_IMAGE)

    return rule


class SimpleClickPredictor:
    """`start(sample)` / `predict(clicks)` of one SimpleClick model, `describe()` for the manifest.

    `pipeline` is the shared evaluation predictor (transforms and per-instance state), `model`
    the network; a batched engine may drive `pipeline`'s prepare/forward/map-back steps itself.
    """

    def __init__(
        self, model: PlainViTModel, pipeline: EvalPredictor, description: dict[str, Any]
    ) -> None:
        self.model = model
        self.pipeline = pipeline
        self._description = description

    def start(self, sample: Sample) -> None:
        self.pipeline.start(sample)

    def predict(self, clicks: list[Click]) -> np.ndarray:
        return self.pipeline.predict(clicks)

    def describe(self) -> dict[str, Any]:
        return dict(self._description)


def make_simpleclick_predictor(
    variant: str, *, name: str | None = None, **options: Any
) -> SimpleClickPredictor:
    """Predictor of one SimpleClick ViT variant; options: `OPTIONS` (see the module docstring)."""
    name = name or f"simpleclick-{_MODEL_SUFFIX[variant]}"
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(f"{name}: unknown options {sorted(unknown)}; known: {list(OPTIONS)}")
    checkpoint = options.get("checkpoint")
    if not checkpoint:
        files = " or ".join(CHECKPOINT_FILES[variant])
        raise ValueError(
            f"{name} needs its official weights: pass checkpoint=PATH (CLI --checkpoint) to "
            f"{files}, downloadable from {DOWNLOAD_PAGE}"
        )
    dtype_name = options.get("dtype") or "float32"
    if dtype_name not in DTYPES:
        raise ValueError(f"{name}: dtype {dtype_name!r} is not one of {list(DTYPES)}")
    device = torch.device(options.get("device") or _default_device())
    zoom_in = _flag("zoom_in", options.get("zoom_in", True))
    flip = _flag("flip", options.get("flip", True))
    input_size = options.get("input_size")
    input_size = int(input_size) if input_size not in (None, "") else None

    model, record, pristine = load_plainvit(
        variant, checkpoint, trust=_flag("trust_checkpoint", options.get("trust_checkpoint", False))
    )
    dtype = DTYPES[dtype_name]
    model = model.to(device=device, dtype=dtype)
    pristine = pristine.to(device)
    rule = zoom_rule(input_size, zoom_in)

    def on_dataset(dataset: str) -> None:
        # Official: model re-loaded per dataset, then pos_embed resized to the zoom target.
        set_input_size(model, rule(dataset).target_size, pristine)  # type: ignore[arg-type]

    def forward(x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return model(x, points)["instances"]

    pipeline = EvalPredictor(
        forward, zoom_in=rule, with_flip=flip, device=device, dtype=dtype, on_dataset=on_dataset
    )
    description = {
        "model": name,
        "architecture": ARCHITECTURES[variant],
        "config": asdict(model.config),
        **record,
        "eval_mode": f"fixed{input_size}" if input_size else "cvpr",
        "zoom_in": {
            "enabled": zoom_in,
            "rule": "SimpleClick scripts/evaluate_model.py, skip_clicks=-1, aspect not kept"
            + ("" if zoom_in else "; ablation: region = whole image at every click"),
            "default": asdict(rule("GrabCut")),
            "DAVIS": asdict(rule("DAVIS")),
        },
        "pos_embed": "bicubic (align_corners=False) from the trained grid to target/patch, "
        "per dataset",
        "flip": flip,
        "predictor": "official BasePredictor, NoBRS, prev-mask = probability map",
        "dtype": dtype_name,
        "device": str(device),
    }
    if device.type == "cuda":
        description["tf32"] = {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
        }
    return SimpleClickPredictor(model, pipeline, description)


def make_vit_xt(**options: Any) -> SimpleClickPredictor:
    """`simpleclick-vit-xt`: ViT-xTiny 448."""
    return make_simpleclick_predictor("xtiny", **options)


def make_vit_b(**options: Any) -> SimpleClickPredictor:
    """`simpleclick-vit-b`: ViT-B 448 (cocolvis_vit_base.pth or sbd_vit_base.pth)."""
    return make_simpleclick_predictor("base", **options)


def make_vit_b224(**options: Any) -> SimpleClickPredictor:
    """`simpleclick-vit-b224`: the ViT-B 448 weights run at 224 x 224 (paper Table 5 row;
    `--eval-mode fixed224`), position embedding resized to the 14 x 14 grid."""
    options.setdefault("input_size", 224)
    return make_simpleclick_predictor("base", name="simpleclick-vit-b224", **options)


def make_vit_l(**options: Any) -> SimpleClickPredictor:
    """`simpleclick-vit-l`: ViT-L 448 (cocolvis_vit_large.pth)."""
    return make_simpleclick_predictor("large", **options)


def make_vit_h(**options: Any) -> SimpleClickPredictor:
    """`simpleclick-vit-h`: ViT-H 448, patch 14 (cocolvis_vit_huge.pth)."""
    return make_simpleclick_predictor("huge", **options)
