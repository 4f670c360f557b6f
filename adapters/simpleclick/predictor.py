"""Registry factories for the SimpleClick ViT models: checkpoint -> evaluation-time predictor.

The predictor is the official NoC-evaluation one of SimpleClick v1.0 (`scripts/evaluate_model.py`,
`--eval-mode cvpr`, NoBRS; PROTOCOL.md §5, §6): ZoomIn with `skip_clicks=-1` resizing every
click's region to exactly 448 x 448 (672 x 672 on DAVIS), horizontal-flip averaging, and the
position embedding resized (bicubic) from the trained grid whenever the dataset changes, as the
script does with `interpolate_pos_embed_inference` on a freshly loaded model per dataset
(`isegm/model/modeling/pos_embed.py`). The shared `EvalPredictor` does the transforms.

Options `cf_n`, `acf` and `cf_click` add CFR-ICL's cascade-forward refinement (its
`scripts/evaluate_model.py --cf-n/--acf/--cf-click`; `bench.adapters.common.cascade`) to any
SimpleClick model; `cfr-icl-vit-*` are the same networks with CFR-ICL's defaults (`--cf-n=4
--acf`, its README), whose checkpoints are SimpleClick checkpoints (golden/cfricl B3).

Checkpoints are read with `torch.load(weights_only=True)` plus inert stand-ins for the pickled
loss object (`bench.adapters.checkpoint`) and loaded strictly, like the official
`isegm/inference/utils.py:load_is_model`.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from bench.adapters.checkpoint import (
    CheckpointError,
    check_config_class,
    config_params,
    load_state_dict_strict,
    read_checkpoint,
)
from bench.adapters.common.cascade import CascadeConfig
from bench.adapters.common.eval_predictor import (
    EvalPredictor,
    ZoomInConfig,
    simpleclick_cvpr_zoom_in,
)
from bench.adapters.common.factory import (
    BATCHED_OPTIONS,
    ModelPredictor,
    batched_record,
    checkpoint_record,
    flag,
    forward_workers,
    parse_options,
    runtime_record,
)
from bench.adapters.simpleclick.models import (
    ARCHITECTURES,
    CFRICL_CHECKPOINT_FILES,
    CFRICL_DEFAULTS,
    CFRICL_DOWNLOAD_PAGE,
    CHECKPOINT_FILES,
    DOWNLOAD_PAGE,
)
from bench.adapters.simpleclick.network import (
    VARIANTS,
    PlainViTConfig,
    PlainViTModel,
    config_from_params,
    set_input_size,
)

__all__ = [
    "CASCADE_OPTIONS",
    "SimpleClickPredictor",
    "cascade_from_options",
    "load_plainvit",
    "make_cfricl_vit_b",
    "make_cfricl_vit_h",
    "make_cfricl_vit_l",
    "make_simpleclick_predictor",
    "make_vit_b",
    "make_vit_b224",
    "make_vit_h",
    "make_vit_l",
    "make_vit_xt",
]

OFFICIAL_CLASS = "isegm.model.is_plainvit_model.PlainVitModel"
CASCADE_OPTIONS = ("cf_n", "acf", "cf_click")
"""CFR-ICL's evaluation options (`--cf-n`, `--acf`, `--cf-click`)."""
SimpleClickPredictor = ModelPredictor
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
    return (
        model,
        checkpoint_record(ckpt),
        ckpt.state_dict["backbone.pos_embed"].detach().clone().float(),
    )


_MODEL_SUFFIX = {"xtiny": "vit-xt", "base": "vit-b", "large": "vit-l", "huge": "vit-h"}


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


def _count_option(name: str, key: str, value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit():
        raise ValueError(f"{name}: {key}={value!r}: expected an integer >= 0")
    return int(text)


def cascade_from_options(name: str, extra: dict[str, Any]) -> CascadeConfig:
    """`cf_n` (CFR steps, default 0 = none), `acf` (adaptive stop), `cf_click` (how many
    first clicks cascade, default 1), as CFR-ICL's `evaluate_model.py` takes them."""
    return CascadeConfig(
        cf_n=_count_option(name, "cf_n", extra.get("cf_n"), 0),
        acf=flag("acf", extra.get("acf", False)),
        cf_click=_count_option(name, "cf_click", extra.get("cf_click"), 1),
    )


def make_simpleclick_predictor(
    variant: str,
    *,
    name: str | None = None,
    checkpoint_files: tuple[str, ...] | None = None,
    download_page: str = DOWNLOAD_PAGE,
    **options: Any,
) -> SimpleClickPredictor:
    """Predictor of one SimpleClick ViT variant; options: the common ones
    (`bench.adapters.common.factory.COMMON_OPTIONS`), `input_size` (official `fixedN`),
    `forward_workers` (`bench.adapters.common.factory.forward_workers`) and CFR-ICL's
    `cf_n` / `acf` / `cf_click` (`cascade_from_options`)."""
    name = name or f"simpleclick-{_MODEL_SUFFIX[variant]}"
    opts = parse_options(
        name,
        options,
        checkpoint_files=checkpoint_files or CHECKPOINT_FILES[variant],
        download_page=download_page,
        extra=("input_size", *BATCHED_OPTIONS, *CASCADE_OPTIONS),
    )
    workers = forward_workers(name, opts)
    cascade = cascade_from_options(name, opts.extra)
    zoom_in, flip = opts.zoom_in, opts.flip
    input_size = opts.extra.get("input_size")
    input_size = int(input_size) if input_size not in (None, "") else None

    model, record, pristine = load_plainvit(variant, opts.checkpoint, trust=opts.trust_checkpoint)
    model = model.to(device=opts.device, dtype=opts.dtype)
    pristine = pristine.to(opts.device)
    rule = zoom_rule(input_size, zoom_in)

    def on_dataset(dataset: str) -> None:
        # Official: model re-loaded per dataset, then pos_embed resized to the zoom target.
        set_input_size(model, rule(dataset).target_size, pristine)  # type: ignore[arg-type]

    def forward(x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return model(x, points)["instances"]

    pipeline = EvalPredictor(
        forward,
        zoom_in=rule,
        with_flip=flip,
        device=opts.device,
        dtype=opts.dtype,
        on_dataset=on_dataset,
        forward_workers=workers,
        cascade=cascade,
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
        "predictor": "official BasePredictor, NoBRS, prev-mask = probability map"
        + (", CFR-ICL cascade-forward refinement" if cascade.enabled else ""),
        "cascade": cascade.record(),
        "batched": batched_record(workers, opts.device),
        **runtime_record(opts),
    }
    return ModelPredictor(model, pipeline, description)


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


def _make_cfricl(variant: str, options: dict[str, Any]) -> SimpleClickPredictor:
    for key, value in CFRICL_DEFAULTS.items():
        options.setdefault(key, value)
    return make_simpleclick_predictor(
        variant,
        name=f"cfr-icl-{_MODEL_SUFFIX[variant]}",
        checkpoint_files=CFRICL_CHECKPOINT_FILES[variant],
        download_page=CFRICL_DOWNLOAD_PAGE[variant],
        **options,
    )


def make_cfricl_vit_b(**options: Any) -> SimpleClickPredictor:
    """`cfr-icl-vit-b`: ViT-B 448 with CFR-ICL's defaults (cf_n=4, acf)."""
    return _make_cfricl("base", options)


def make_cfricl_vit_l(**options: Any) -> SimpleClickPredictor:
    """`cfr-icl-vit-l`: ViT-L 448 with CFR-ICL's defaults (cf_n=4, acf)."""
    return _make_cfricl("large", options)


def make_cfricl_vit_h(**options: Any) -> SimpleClickPredictor:
    """`cfr-icl-vit-h`: ViT-H 448 with CFR-ICL's defaults (cf_n=4, acf); the released
    `cocolvis_icl_vit_huge.pth`."""
    return _make_cfricl("huge", options)
