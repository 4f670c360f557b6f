"""Official SAM-family checkpoint files: safe reading, which network a file holds, strict loading.

Formats: `segment-anything`, `segment-anything-hq` and MobileSAM release
`torch.save(model.state_dict())` (a bare state_dict, `segment_anything/build_sam.py:_build_sam`,
`segment_anything_hq/build_sam.py:_build_sam` and `mobile_sam/build_sam.py:build_sam_vit_t`
load it as is); `sam2` releases `{"model":
state_dict}` (`sam2/build_sam.py:_load_checkpoint` reads `["model"]`). Both hold tensors only,
so they load with `torch.load(weights_only=True)`; `trust=True` (option `trust_checkpoint`) is
the explicit opt-out for other pickles. Either layout is accepted for either family, because the
keys alone say which network a file holds.

The official loaders give a bare `size mismatch` / `Missing key(s)` traceback when a file of
another variant is passed (facebookresearch/segment-anything issue #15); here the variant is
read from the state_dict first (patch-embedding width, block count, the keys SAM 2.1 added) and
a mismatch names the model to use instead, before any network is built. Remaining differences
are reported key by key (every missing and unexpected key and every shape mismatch is named)
and the load is strict. segment-anything-hq's own builder loads with `strict=False` and prints
the result, so a plain SAM checkpoint passed to it gives a network whose HQ decoder layers keep
their random initialisation; here the same file is refused, naming the HQ keys it lacks.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.adapters.checkpoint import CheckpointError, file_sha256, state_dict_mismatch
from bench.adapters.sam.models import SAM2_PACKAGE, VARIANTS, SamVariant, download_page

# (patch-embedding width, number of encoder blocks) -> SAM registry name.
_SAM_SIGNATURES = {(768, 12): "sam-vit-b", (1024, 24): "sam-vit-l", (1280, 32): "sam-vit-h"}
# (Hiera width, number of blocks) -> size suffix of the SAM 2 / 2.1 registry names.
_SAM2_SIGNATURES = {(96, 12): "t", (96, 16): "s", (112, 24): "b+", (144, 48): "l"}
_SAM_PATCH = "image_encoder.patch_embed.proj.weight"
_SAM2_PATCH = "image_encoder.trunk.patch_embed.proj.weight"
_SAM21_ONLY = "no_obj_embed_spatial"  # added by SAM 2.1 (configs/sam2.1/*.yaml)
_HQ_ONLY = "mask_decoder.hf_token.weight"  # MaskDecoderHQ's HQ output token
_TINYVIT_PATCH = "image_encoder.patch_embed.seq.0.c.weight"  # MobileSAM's TinyViT stem


@dataclass(frozen=True)
class SamCheckpoint:
    path: Path
    sha256: str
    state_dict: dict[str, torch.Tensor]
    layout: str  # "state_dict" or "{'model': state_dict}"
    weights_only: bool


def _block_count(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for key in state_dict if (m := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def identify(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The registry name of the released network these weights belong to, None if unknown."""
    if _TINYVIT_PATCH in state_dict:
        return "mobilesam"  # an HQ variant of it is not registered: the strict load names keys
    if _SAM_PATCH in state_dict:
        width = state_dict[_SAM_PATCH].shape[0]
        name = _SAM_SIGNATURES.get((width, _block_count(state_dict, "image_encoder.blocks.")))
        if name is not None and _HQ_ONLY in state_dict:
            return name.replace("sam-", "sam-hq-", 1)
        return name
    if _SAM2_PATCH in state_dict:
        width = state_dict[_SAM2_PATCH].shape[0]
        size = _SAM2_SIGNATURES.get(
            (width, _block_count(state_dict, "image_encoder.trunk.blocks."))
        )
        if size is None:
            return None
        return f"sam2.1-hiera-{size}" if _SAM21_ONLY in state_dict else f"sam2-hiera-{size}"
    return None


def _load(path: Path, trust: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as error:
        if trust:
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from error
        raise CheckpointError(
            f"{path}: the file's pickle holds more than tensors, which the safe loader "
            "(torch.load weights_only=True) refuses because unpickling it could run arbitrary "
            "code; official SAM / SAM 2 checkpoints hold tensors only. If the file comes from a "
            "trusted source, pass --trust-checkpoint (option trust_checkpoint=True). "
            f"({error})"
        ) from error
    except Exception as error:  # zip / format errors of truncated or foreign files
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint ({type(error).__name__}: {error})"
        ) from error


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def read_sam_checkpoint(path: str | Path, *, trust: bool = False) -> SamCheckpoint:
    """Load an official SAM / SAM 2 checkpoint file on the CPU (safely unless `trust`)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    loaded = _load(path, trust)
    if isinstance(loaded, dict) and _is_state_dict(loaded.get("model")):
        state_dict, layout = dict(loaded["model"]), "{'model': state_dict}"
    elif _is_state_dict(loaded):
        state_dict, layout = dict(loaded), "state_dict"
    else:
        what = (
            "top-level keys: " + ", ".join(map(str, list(loaded)[:8]))
            if isinstance(loaded, dict)
            else f"top level is {type(loaded).__name__}"
        )
        raise CheckpointError(
            f"{path}: not a SAM / SAM 2 checkpoint (expected a state_dict or {{'model': "
            f"state_dict}}; {what})"
        )
    return SamCheckpoint(path, file_sha256(path), state_dict, layout, not trust)


def check_variant(checkpoint: SamCheckpoint, variant: SamVariant) -> None:
    """Refuse weights of another released network, naming the model that fits them."""
    found = identify(checkpoint.state_dict)
    if found is None or found == variant.name:
        return  # unknown layouts fall through to the strict load's key-by-key report
    if found.replace("sam-", "sam-hq-", 1) == variant.name:
        return  # a plain SAM file for SAM-HQ: the strict load names every HQ key it lacks
    other = VARIANTS[found]
    raise CheckpointError(
        f"{checkpoint.path}: this is a checkpoint of {other.architecture} "
        f"({other.checkpoint_file}), not of {variant.architecture} "
        f"({variant.checkpoint_file}); use --model {found}"
    )


def load_weights(network: torch.nn.Module, checkpoint: SamCheckpoint, variant: SamVariant) -> None:
    """Strict `load_state_dict`; a mismatch names every missing and unexpected key."""
    expected = {name: tensor.shape for name, tensor in network.state_dict().items()}
    missing, unexpected, shapes = state_dict_mismatch(expected, checkpoint.state_dict)
    if missing or unexpected or shapes:
        architecture = f"{variant.architecture} (`{variant.package}` package)"
        parts = [f"{checkpoint.path}: checkpoint does not match the {architecture} architecture"]
        if missing:
            parts.append(f"{len(missing)} missing key(s): {', '.join(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {', '.join(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es): {', '.join(shapes)}")
        if missing and variant.family == "sam-hq" and identify(checkpoint.state_dict):
            parts.append(
                "this is a plain SAM checkpoint without the HQ decoder (segment-anything-hq's "
                "own builder would load it with strict=False and leave those layers random)"
            )
        page = download_page(variant)
        parts.append(f"expected an official {architecture} checkpoint from {page}")
        raise CheckpointError("; ".join(parts))
    network.load_state_dict(checkpoint.state_dict, strict=True)


def checkpoint_record(checkpoint: SamCheckpoint) -> dict[str, Any]:
    """The manifest's record of the file (same keys as the other deep adapters)."""
    return {
        "checkpoint": str(checkpoint.path),
        "checkpoint_sha256": checkpoint.sha256,
        "checkpoint_weights_only": checkpoint.weights_only,
        "checkpoint_layout": checkpoint.layout,
        "strict_load": True,
    }


def official_layout(variant: SamVariant) -> str:
    """How the official release stores this variant's weights (for saving test files)."""
    return "{'model': state_dict}" if variant.package == SAM2_PACKAGE else "state_dict"
