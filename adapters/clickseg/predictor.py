"""Registry factories of the ClickSEG models: checkpoint -> evaluation-time predictor.

Loading (golden/clickseg/README.md section 1, quirk 2): ClickSEG checkpoints are
`{"state_dict", "config"}` written by `isegm/utils/misc.py:save_checkpoint` and hold only
tensors, an OrderedDict and builtins, so they are read with `torch.load(weights_only=True)`.
The official loader (`isegm/inference/utils.py:load_single_is_model`) calls
`load_state_dict(strict=False)`, which silently keeps random weights for a name that does not
match. We load with `strict=True` instead, which every official-format file passes (the
manifests list exactly the names our modules register); a file of another variant or family is
refused with the missing / unexpected keys named (`load_state_dict_strict`). The manifest
records both: `strict_load: true`, `official_strict: false`.

The predictors are those of `scripts/evaluate_model.py` (FocalClick: `FocalPredictor` with
`--infer-size 256`; CDNet: `DiffisionPredictor`). The official validation scripts pass
`--thresh 0.5`; the harness thresholds at `--pred-thr` (0.49 by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
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
from bench.adapters.clickseg.cdnet import OFFICIAL_CLASS as CDNET_CLASS
from bench.adapters.clickseg.cdnet import CDNetModel, cdnet_config_check
from bench.adapters.clickseg.cdnet_predictor import CDNET_INFER_SIZE, CDNetPredictor
from bench.adapters.clickseg.focal_predictor import FocalPredictor
from bench.adapters.clickseg.hrnet import OFFICIAL_CLASS as HRNET_CLASS
from bench.adapters.clickseg.hrnet import FocalHRNetModel, hrnet_config_check
from bench.adapters.clickseg.models import (
    ARCHITECTURES,
    CHECKPOINT_FILES,
    DOWNLOAD_PAGE,
    INFER_SIZE,
)
from bench.adapters.clickseg.segformer import (
    OFFICIAL_CLASS as SEGFORMER_CLASS,
)
from bench.adapters.clickseg.segformer import (
    SegFormerModel,
    segformer_config_from_params,
)
from bench.adapters.clickseg.transforms import ClickSEGZoomIn
from bench.adapters.common.factory import checkpoint_record, parse_options, runtime_record
from bench.sample import Click, Sample

__all__ = [
    "ClickSEGPredictor",
    "load_clickseg",
    "make_cdnet_resnet34",
    "make_focalclick_segformer_b0_s2",
    "make_focalclick_hrnet18s_s2",
    "make_focalclick_segformer_b3_s2",
]

_SEGFORMER_MODELS = {"b0": "focalclick-segformer-b0-s2", "b3": "focalclick-segformer-b3-s2"}


def _refuse_variant(path: Path, found: str, name: str, hint: str | None) -> CheckpointError:
    use = f"; use model {hint}" if hint else ""
    return CheckpointError(f"{path}: this checkpoint is {found}, not {ARCHITECTURES[name]}{use}")


def build_model(name: str) -> torch.nn.Module:
    """A freshly built (random-weight) network of a registered ClickSEG model."""
    if name.startswith("focalclick-segformer-"):
        return SegFormerModel(name.split("-")[2])
    if name == "cdnet-resnet34":
        return CDNetModel()
    if name == "focalclick-hrnet18s-s2":
        return FocalHRNetModel("hrnet18s")
    raise ValueError(f"unknown ClickSEG model {name!r}; known: {list(ARCHITECTURES)}")


def load_clickseg(
    name: str, checkpoint: str | Path, trust: bool = False
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build model `name` from an official checkpoint and load its weights strictly (CPU, eval).

    A checkpoint whose saved config names another class or another variant is refused with a
    message naming what it is; one without a config is checked by its state_dict names alone.
    """
    architecture = ARCHITECTURES[name]
    ckpt = read_checkpoint(checkpoint, trust=trust)
    model = build_model(name)
    if ckpt.config and name in _SEGFORMER_MODELS.values():
        check_config_class(
            ckpt, SEGFORMER_CLASS, architecture=architecture, download_page=DOWNLOAD_PAGE
        )
        try:
            variant = segformer_config_from_params(config_params(ckpt))
        except ValueError as error:
            raise CheckpointError(f"{ckpt.path}: {error}") from None
        if _SEGFORMER_MODELS[variant] != name:
            raise _refuse_variant(
                ckpt.path, f"SegFormer {variant.upper()}", name, _SEGFORMER_MODELS[variant]
            )
    if ckpt.config and name == "focalclick-hrnet18s-s2":
        check_config_class(
            ckpt, HRNET_CLASS, architecture=architecture, download_page=DOWNLOAD_PAGE
        )
        try:
            hrnet_config_check(config_params(ckpt))
        except ValueError as error:
            raise CheckpointError(f"{ckpt.path}: {error}") from None
    if ckpt.config and name == "cdnet-resnet34":
        check_config_class(
            ckpt, CDNET_CLASS, architecture=architecture, download_page=DOWNLOAD_PAGE
        )
        try:
            cdnet_config_check(config_params(ckpt))
        except ValueError as error:
            raise CheckpointError(f"{ckpt.path}: {error}") from None
    load_state_dict_strict(
        model,
        ckpt.state_dict,
        architecture=architecture,
        download_page=DOWNLOAD_PAGE,
        path=ckpt.path,
    )
    model.eval().requires_grad_(False)
    return model, {**checkpoint_record(ckpt), "official_strict": False}


class ClickSEGPredictor:
    """The harness predictor: `start` / `predict` of the official evaluation predictor, the
    batched `open_instance` / `predict_batch`, and `describe()` for the run manifest. Reads
    only the sample's image."""

    def __init__(self, model: torch.nn.Module, pipeline: Any, description: dict[str, Any]):
        self.model = model
        self.pipeline = pipeline
        self._description = description

    def start(self, sample: Sample) -> None:
        self.pipeline.start(sample)

    def predict(self, clicks: list[Click]) -> np.ndarray:
        return self.pipeline.predict(clicks)

    def open_instance(self, sample: Sample) -> Any:
        return self.pipeline.open_instance(sample)

    def predict_batch(self, requests: Sequence[tuple[Any, Sequence[Click]]]) -> list[np.ndarray]:
        """One coarse forward for all instances (`bench.adapters.BatchPredictor`)."""
        return self.pipeline.predict_batch(requests)

    def describe(self) -> dict[str, Any]:
        return dict(self._description)


def make_focalclick_predictor(name: str, **options: Any) -> ClickSEGPredictor:
    """FocalClick model `name` in the official `FocalPredictor`.

    Options: `checkpoint` (required), `device`, `trust_checkpoint`, `infer_size` (default 256,
    the official validation scripts' value; the argparse default of `evaluate_model.py` is
    384). `zoom_in=False` and `flip` are refused: the official FocalClick evaluation always
    zooms in and never flips. dtype other than float32 is refused (the focus-crop logic
    compares logits at 0.49 and is defined on float32).
    """
    opts = parse_options(
        name,
        options,
        checkpoint_files=CHECKPOINT_FILES[name],
        download_page=DOWNLOAD_PAGE,
        extra=("infer_size",),
    )
    if opts.dtype_name != "float32":
        raise ValueError(f"{name}: only dtype float32 is supported")
    if "flip" in options and opts.flip:
        raise ValueError(f"{name}: the official FocalClick evaluation runs without flip")
    if not opts.zoom_in:
        raise ValueError(f"{name}: the official FocalClick evaluation always zooms in")
    infer_size = int(opts.extra.get("infer_size") or INFER_SIZE[name])
    model, record = load_clickseg(name, opts.checkpoint, trust=opts.trust_checkpoint)
    model = model.to(opts.device)
    zoom = ClickSEGZoomIn()
    pipeline = FocalPredictor(model, infer_size=infer_size, zoom_in=zoom, device=opts.device)
    description = {
        "model": name,
        "architecture": ARCHITECTURES[name],
        **record,
        "infer_size": infer_size,
        "predictor": "official ClickSEG FocalPredictor (scripts/evaluate_model.py FocalClick)",
        "focus_crop_r": pipeline.focus_crop_r,
        "refine_after_click_10": "coarse map replaced by the previous prediction outside the "
        "focus box",
        "zoom_in": {
            "rule": "ClickSEG ZoomIn (eval-mode cvpr): ROI cropped, not resized; recomputed "
            "every click",
            **asdict(zoom),
        },
        "flip": False,
        "official_threshold": 0.5,
        "batched": "one coarse forward for all instances in flight; focus crop and refiner "
        "per instance",
        **runtime_record(opts),
    }
    return ClickSEGPredictor(model, pipeline, description)


def make_focalclick_segformer_b0_s2(**options: Any) -> ClickSEGPredictor:
    """`focalclick-segformer-b0-s2`: segformerB0_S2_{cclvs,sbd}.pth."""
    return make_focalclick_predictor("focalclick-segformer-b0-s2", **options)


def make_focalclick_segformer_b3_s2(**options: Any) -> ClickSEGPredictor:
    """`focalclick-segformer-b3-s2`: segformerB3_S2_{cclvs,sbd}.pth."""
    return make_focalclick_predictor("focalclick-segformer-b3-s2", **options)


def make_focalclick_hrnet18s_s2(**options: Any) -> ClickSEGPredictor:
    """`focalclick-hrnet18s-s2`: hrnet18s_S2_{cclvs,sbd}.pth."""
    return make_focalclick_predictor("focalclick-hrnet18s-s2", **options)


def make_cdnet_resnet34(**options: Any) -> ClickSEGPredictor:
    """`cdnet-resnet34`: cdnet_res34_{cclvs,sbd}.pth in the official `DiffisionPredictor`.

    Options: `checkpoint` (required), `device`, `trust_checkpoint`. The official predictor
    always flips, always zooms in and always runs at 384 x 384: `flip=False`, `zoom_in=False`
    and other dtypes than float32 are refused. It returns the official bool mask
    (probability > 0.5) as a 0/1 map.
    """
    name = "cdnet-resnet34"
    opts = parse_options(
        name, options, checkpoint_files=CHECKPOINT_FILES[name], download_page=DOWNLOAD_PAGE
    )
    if opts.dtype_name != "float32":
        raise ValueError(f"{name}: only dtype float32 is supported")
    if not opts.flip:
        raise ValueError(f"{name}: the official CDNet predictor always averages a flipped pass")
    if not opts.zoom_in:
        raise ValueError(f"{name}: the official CDNet evaluation always zooms in")
    model, record = load_clickseg(name, opts.checkpoint, trust=opts.trust_checkpoint)
    model = model.to(opts.device)
    zoom = ClickSEGZoomIn()
    pipeline = CDNetPredictor(model, zoom_in=zoom, device=opts.device)
    description = {
        "model": name,
        "architecture": ARCHITECTURES[name],
        **record,
        "infer_size": CDNET_INFER_SIZE,
        "predictor": "official ClickSEG DiffisionPredictor (scripts/evaluate_model.py CDNet)",
        "output": "bool mask prob > 0.5 (official), returned as a 0/1 map",
        "zoom_in": {
            "rule": "ClickSEG ZoomIn (eval-mode cvpr): ROI cropped, not resized; recomputed "
            "every click",
            **asdict(zoom),
        },
        "flip": True,
        "official_threshold": 0.5,
        "batched": "one forward for every instance's flip pair; PixelDiffusion per instance",
        **runtime_record(opts),
    }
    return ClickSEGPredictor(model, pipeline, description)
