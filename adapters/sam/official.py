"""The official `segment-anything`, `sam2` and `segment-anything-hq` packages: imported, and their
networks built, with or without a working torchvision (and, for segment-anything-hq, without
timm).

What torchvision is used for in the installed packages (segment-anything 1.0, sam2 1.1):

* `segment_anything/utils/transforms.py`: `resize` and `to_pil_image` from
  `torchvision.transforms.functional`, for `ResizeLongestSide.apply_image` (a PIL bilinear
  resize of the uint8 image, longest side 1024);
* `sam2/utils/transforms.py`: `ToTensor`, `Resize((1024, 1024))` and `Normalize` for
  `SAM2Transforms` (uint8 -> [0, 1], bilinear antialiased resize, ImageNet normalisation);
* both `automatic_mask_generator.py`: `torchvision.ops.boxes.batched_nms, box_area` (not used
  for clicks).

The networks and their builders (`segment_anything.build_sam`, `segment_anything.modeling`,
`sam2.build_sam`, `sam2.modeling`) use no torchvision. `sam2/__init__.py` imports none either,
but `segment_anything/__init__.py` re-exports `SamPredictor` and `SamAutomaticMaskGenerator`, so
any `import segment_anything...` fails where torchvision does not import (absent, or a PyPI CUDA
wheel beside a CPU torch: "operator torchvision::nms does not exist").

Decision: when that import fails because of torchvision, the package is entered without running
its `__init__` (a package module with the installed `__path__`, nothing executed), and its own
`build_sam` and `modeling` modules are imported from the installed files, unchanged. Nothing of
the package is patched, copied or stubbed; only its two torchvision re-exports are missing from
the `segment_anything` namespace in that process. Where torchvision imports, the ordinary import
is used. The predictors' few lines of glue and the image transforms are re-expressed in
`bench.adapters.sam.predictor` / `.transforms` (see there), so that both code paths give the same
numbers. Rejected alternatives: a stand-in `torchvision` module in `sys.modules` (it would hide
a broken environment from every other library in the process) and a vendored or patched copy of
the package (no longer the official code).

segment-anything-hq 0.3 goes further: its `__init__` imports the predictor (torchvision) and its
`modeling/__init__` imports `tiny_vit_sam` (its own MobileSAM-HQ encoder), which imports timm,
which this project never installs. So both `segment_anything_hq` and `segment_anything_hq.modeling`
are always entered without their `__init__` (unless already imported), the modules the ViT
networks need (`modeling.sam`, `image_encoder`, `mask_decoder_hq`, `prompt_encoder`,
`transformer`) are imported from the installed files, and the network is assembled with exactly
the arguments of the package's `build_sam.py:_build_sam` (`build_sam_hq` below). The official
builder itself cannot be imported without timm (`build_sam.py` imports `TinyViT` from
`.modeling`); tests/test_sam_hq.py imports it with stand-ins and checks that both networks are
the same. MobileSAM is built by `bench.adapters.sam.mobilesam`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import cache
from types import ModuleType
from typing import Any

import torch

from bench.adapters.sam.models import (
    INSTALL_HINT,
    MOBILESAM_KEY,
    SAM2_PACKAGE,
    SAM_HQ_PACKAGE,
    SAM_PACKAGE,
    SamVariant,
)

SAM_HQ_MODULES = (
    "common",
    "image_encoder",
    "mask_decoder_hq",
    "prompt_encoder",
    "transformer",
    "sam",
)
# segment_anything_hq/build_sam.py: build_sam_vit_{b,l,h} -> _build_sam(embed dim, depth, heads,
# global attention indexes).
SAM_HQ_ENCODERS = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}


class MissingPackageError(ImportError):
    """An official package the model needs is not installed; the message says how to install."""


def _missing(package: str, model: str, error: BaseException) -> MissingPackageError:
    return MissingPackageError(
        f"{model} needs the official `{package}` package ({type(error).__name__}: {error}); "
        f"install it with: {INSTALL_HINT[package]}"
    )


@cache
def torchvision_import_error() -> str | None:
    """None if torchvision imports beside this torch, else why not (one line)."""
    try:
        import torchvision  # noqa: F401
    except Exception as error:  # ModuleNotFoundError, or RuntimeError from a mismatched wheel
        return f"{type(error).__name__}: {error}"
    return None


def _enter_package_without_init(name: str) -> ModuleType:
    """`sys.modules[name]` as a bare package: its submodules import, its `__init__` never runs."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    return package


@cache
def segment_anything_builders(model: str = "sam") -> ModuleType:
    """`segment_anything.build_sam` (with `sam_model_registry`), imported as described above."""
    if importlib.util.find_spec("segment_anything") is None:
        absent = ModuleNotFoundError("No module named 'segment_anything'")
        raise _missing(SAM_PACKAGE, model, absent)
    if torchvision_import_error() is not None and "segment_anything" not in sys.modules:
        _enter_package_without_init("segment_anything")
    return importlib.import_module("segment_anything.build_sam")


@cache
def sam2_builders(model: str = "sam2") -> ModuleType:
    """`sam2.build_sam` (with `build_sam2`); importing `sam2` initialises its Hydra configs."""
    try:
        return importlib.import_module("sam2.build_sam")
    except ImportError as error:  # sam2 itself, or hydra-core / iopath / omegaconf
        raise _missing(SAM2_PACKAGE, model, error) from error


@cache
def sam_hq_modeling(model: str = "sam-hq") -> ModuleType:
    """`segment_anything_hq.modeling` with the submodules SAM-HQ's ViT networks need, imported
    as described above (the namespace is the package's, its `__init__` not run)."""
    if importlib.util.find_spec("segment_anything_hq") is None:
        absent = ModuleNotFoundError("No module named 'segment_anything_hq'")
        raise _missing(SAM_HQ_PACKAGE, model, absent)
    for package in ("segment_anything_hq", "segment_anything_hq.modeling"):
        if package not in sys.modules:
            _enter_package_without_init(package)
    for name in SAM_HQ_MODULES:
        importlib.import_module(f"segment_anything_hq.modeling.{name}")
    return sys.modules["segment_anything_hq.modeling"]


def ensure_package(variant: SamVariant) -> ModuleType:
    """The builders' module of the variant's package, or MissingPackageError saying what to
    install."""
    if variant.package == SAM_PACKAGE:
        return segment_anything_builders(variant.name)
    if variant.package == SAM_HQ_PACKAGE:
        return sam_hq_modeling(variant.name)
    return sam2_builders(variant.name)


def build_sam_hq(variant: SamVariant) -> torch.nn.Module:
    """segment_anything_hq's `_build_sam(...)` for `variant` (checkpoint None), from the
    package's modules; the official builder's `requires_grad` flags do not matter here."""
    from functools import partial

    modeling = sam_hq_modeling(variant.name)
    embed_dim, depth, heads, global_attn = SAM_HQ_ENCODERS[variant.builder_key]
    prompt_embed_dim, image_size, patch = 256, 1024, 16
    grid = image_size // patch
    return modeling.sam.Sam(
        image_encoder=modeling.image_encoder.ImageEncoderViT(
            depth=depth,
            embed_dim=embed_dim,
            img_size=image_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=heads,
            patch_size=patch,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=list(global_attn),
            window_size=14,
            out_chans=prompt_embed_dim,
        ),
        prompt_encoder=modeling.prompt_encoder.PromptEncoder(
            embed_dim=prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=modeling.mask_decoder_hq.MaskDecoderHQ(
            num_multimask_outputs=3,
            transformer=modeling.transformer.TwoWayTransformer(
                depth=2, embedding_dim=prompt_embed_dim, mlp_dim=2048, num_heads=8
            ),
            transformer_dim=prompt_embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
            vit_dim=embed_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


def construct(variant: SamVariant, *, sam2_postprocessing: bool = True) -> torch.nn.Module:
    """The variant's untrained network as its builder makes it (any device context)."""
    if variant.builder_key == MOBILESAM_KEY:
        from bench.adapters.sam.mobilesam import build_mobile_sam

        return build_mobile_sam(variant.name)
    if variant.package == SAM_HQ_PACKAGE:
        return build_sam_hq(variant)
    builders = ensure_package(variant)
    if variant.package == SAM_PACKAGE:
        return builders.sam_model_registry[variant.builder_key](checkpoint=None)
    return builders.build_sam2(
        variant.builder_key,
        None,
        device="cpu",
        mode="eval",
        apply_postprocessing=sam2_postprocessing,
    )


def build_network(variant: SamVariant, *, sam2_postprocessing: bool = True) -> torch.nn.Module:
    """The variant's network from the official builder, random weights, on the CPU, eval mode.

    SAM: `sam_model_registry[key](checkpoint=None)`. SAM 2: `build_sam2(config, None, "cpu")`,
    whose default `apply_postprocessing=True` turns on the mask decoder's
    `dynamic_multimask_via_stability` (single-mask output falls back to the best of the three
    multimask outputs when it is not stable), as every `build_sam2` user gets it.
    """
    network = construct(variant, sam2_postprocessing=sam2_postprocessing)
    return network.eval().requires_grad_(False)


def package_versions() -> dict[str, Any]:
    """Installed versions of the official packages and of torchvision (for the manifest)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, Any] = {}
    for package in (SAM_PACKAGE, SAM2_PACKAGE, SAM_HQ_PACKAGE, "torchvision"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    found["torchvision_imports"] = torchvision_import_error() is None
    return found
