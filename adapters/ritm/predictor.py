"""Registry factories for the RITM HRNet models: checkpoint -> evaluation-time predictor.

The predictor is the official NoC-evaluation one (`scripts/evaluate_model.py`, eval-mode cvpr,
NoBRS): ZoomIn with target 400 (600 on DAVIS) and skip_clicks 1, so click 1 runs on the image
at its native size with an int64 points tensor, plus horizontal-flip averaging
(PROTOCOL.md sections 5 and 6). The shared `EvalPredictor` does the transforms.

Checkpoints are read with `torch.load(weights_only=True)` (RITM files hold only tensors,
builtins and class names as strings) and loaded with strict=True. The official loader
(`isegm/inference/utils.py:load_is_model`) uses strict=False, which would silently keep random
weights for any name that does not match; the released files match the architecture exactly
(golden/README.md section 1), so strict loading only ever rejects a wrong file.
"""

from __future__ import annotations

from dataclasses import asdict
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
from bench.adapters.common.eval_predictor import EvalPredictor, ritm_cvpr_zoom_in
from bench.adapters.common.factory import (
    BATCHED_OPTIONS,
    ModelPredictor,
    batched_record,
    checkpoint_record,
    forward_workers,
    parse_options,
    runtime_record,
)
from bench.adapters.ritm.models import ARCHITECTURES, CHECKPOINT_FILES, DOWNLOAD_PAGE
from bench.adapters.ritm.network import (
    HRNET_VARIANTS,
    OFFICIAL_CLASS,
    HRNetConfig,
    HRNetModel,
    config_from_params,
)

__all__ = [
    "RITMPredictor",
    "load_hrnet",
    "make_hrnet18",
    "make_hrnet18s",
    "make_hrnet32",
    "make_ritm_predictor",
]

RITMPredictor = ModelPredictor


def _same_architecture(a: HRNetConfig, b: HRNetConfig) -> bool:
    return (a.width, a.ocr_width, a.small) == (b.width, b.ocr_width, b.small)


def load_hrnet(
    variant: str, checkpoint: str | Path, trust: bool = False
) -> tuple[HRNetModel, dict[str, Any]]:
    """Build `variant` from an official checkpoint and load its weights strictly (CPU, eval).

    Returns the model and a record of the file (path, sha256, weights_only). A checkpoint of
    another RITM variant or another model family is refused with a message that says which.
    """
    architecture = ARCHITECTURES[variant]
    ckpt = read_checkpoint(checkpoint, trust=trust)
    expected = HRNET_VARIANTS[variant]
    config = expected
    if ckpt.config:
        check_config_class(
            ckpt, OFFICIAL_CLASS, architecture=architecture, download_page=DOWNLOAD_PAGE
        )
        try:
            config = config_from_params(config_params(ckpt))
        except ValueError as error:
            raise CheckpointError(f"{ckpt.path}: {error}") from None
        if not _same_architecture(config, expected):
            found = next(
                (n for n, c in HRNET_VARIANTS.items() if _same_architecture(c, config)), None
            )
            hint = f"; use model ritm-{found}" if found else ""
            raise CheckpointError(
                f"{ckpt.path}: this checkpoint is HRNet width {config.width}, OCR width "
                f"{config.ocr_width}, small={config.small}, not {architecture}{hint}"
            )
    model = HRNetModel(config)
    load_state_dict_strict(
        model,
        ckpt.state_dict,
        architecture=architecture,
        download_page=DOWNLOAD_PAGE,
        path=ckpt.path,
    )
    model.eval().requires_grad_(False)
    return model, checkpoint_record(ckpt)


def _zoom_description(enabled: bool) -> dict[str, Any] | None:
    if not enabled:
        return None
    return {
        "rule": "RITM scripts/evaluate_model.py eval-mode cvpr",
        "default": asdict(ritm_cvpr_zoom_in("GrabCut")),
        "DAVIS": asdict(ritm_cvpr_zoom_in("DAVIS")),
    }


def make_ritm_predictor(variant: str, **options: Any) -> RITMPredictor:
    """Predictor of one RITM HRNet variant.

    Options: `checkpoint` (required, official .pth), `device` (default cuda if available),
    `dtype` ("float32" | "bfloat16" | "float16"; the transforms stay float32),
    `trust_checkpoint` (unpickle with weights_only=False; RITM files never need it),
    `zoom_in` (default True: the official cvpr ZoomIn; False runs every click on the whole
    image), `flip` (default True: official flip averaging) and `forward_workers`
    (`bench.adapters.common.factory.forward_workers`). Booleans also accept "true" / "false" as
    given on the command line.
    """
    name = f"ritm-{variant}"
    opts = parse_options(
        name,
        options,
        checkpoint_files=CHECKPOINT_FILES[variant],
        download_page=DOWNLOAD_PAGE,
        extra=BATCHED_OPTIONS,
    )
    workers = forward_workers(name, opts)
    model, record = load_hrnet(variant, opts.checkpoint, trust=opts.trust_checkpoint)
    model = model.to(device=opts.device, dtype=opts.dtype)

    def forward(x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return model(x, points)["instances"]

    pipeline = EvalPredictor(
        forward,
        zoom_in=ritm_cvpr_zoom_in if opts.zoom_in else None,
        with_flip=opts.flip,
        device=opts.device,
        dtype=opts.dtype,
        forward_workers=workers,
    )
    description = {
        "model": name,
        "architecture": ARCHITECTURES[variant],
        "config": asdict(model.config),
        **record,
        "zoom_in": _zoom_description(opts.zoom_in),
        "flip": opts.flip,
        "predictor": "official BasePredictor, NoBRS, prev-mask = probability map",
        "batched": batched_record(workers, opts.device),
        **runtime_record(opts),
    }
    return ModelPredictor(model, pipeline, description)


def make_hrnet18s(**options: Any) -> RITMPredictor:
    """`ritm-hrnet18s`: coco_lvis_h18s_itermask.pth."""
    return make_ritm_predictor("hrnet18s", **options)


def make_hrnet18(**options: Any) -> RITMPredictor:
    """`ritm-hrnet18`: coco_lvis_h18_itermask.pth or sbd_h18_itermask.pth."""
    return make_ritm_predictor("hrnet18", **options)


def make_hrnet32(**options: Any) -> RITMPredictor:
    """`ritm-hrnet32`: coco_lvis_h32_itermask.pth."""
    return make_ritm_predictor("hrnet32", **options)
