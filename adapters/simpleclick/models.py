"""Registry entries of the SimpleClick ViT models (Liu et al., ICCV 2023) and of CFR-ICL (Sun et
al., arXiv 2303.05620), which evaluates the same networks with cascade-forward refinement.

Kept cheap: no torch import here. The factories live in `bench.adapters.simpleclick.predictor`.
`params_m` is the paper's Table 5 figure, which is thop's count (golden/README.md §1-2); the full
state_dicts are larger (unused classifier, class token, position embedding, GroupNorms).
"""

from __future__ import annotations

from bench.adapters import ModelSpec, register_model

DOWNLOAD_PAGE = "https://github.com/uncbiag/SimpleClick#download"
"""SimpleClick README, "Download" section: the Google Drive folder of the released models."""

# File names as the SimpleClick README / run_evaluate.sh and downstream users spell them; the
# Google Drive folder holds COCO+LVIS- and SBD-trained weights of each size.
CHECKPOINT_FILES: dict[str, tuple[str, ...]] = {
    "xtiny": ("sbd_vit_xtiny.pth",),
    "base": ("cocolvis_vit_base.pth", "sbd_vit_base.pth"),
    "large": ("cocolvis_vit_large.pth", "sbd_vit_large.pth"),
    "huge": ("cocolvis_vit_huge.pth", "sbd_vit_huge.pth"),
}

ARCHITECTURES: dict[str, str] = {
    "xtiny": "SimpleClick ViT-xTiny 448 (patch 16, width 160, depth 8)",
    "base": "SimpleClick ViT-B 448 (patch 16, width 768, depth 12)",
    "large": "SimpleClick ViT-L 448 (patch 16, width 1024, depth 24)",
    "huge": "SimpleClick ViT-H 448 (patch 14, width 1280, depth 32)",
}

_PREDICTOR = "bench.adapters.simpleclick.predictor"
_CVPR = "448 x 448 zoom-in region (672 x 672 on DAVIS)"
_ENTRIES = [
    # name, variant, factory, Table 5 params (M), input size
    ("simpleclick-vit-xt", "xtiny", "make_vit_xt", 3.72, _CVPR),
    ("simpleclick-vit-b", "base", "make_vit_b", 96.46, _CVPR),
    ("simpleclick-vit-l", "large", "make_vit_l", 322.18, _CVPR),
    ("simpleclick-vit-h", "huge", "make_vit_h", 659.39, _CVPR),
    ("simpleclick-vit-b224", "base", "make_vit_b224", 96.46, "224 x 224 zoom-in region"),
]

for _name, _variant, _factory, _params, _size in _ENTRIES:
    register_model(
        ModelSpec(
            name=_name,
            factory=f"{_PREDICTOR}:{_factory}",
            family="simpleclick",
            needs_weights=True,
            description=(
                f"{ARCHITECTURES[_variant]}"
                + (" run at 224 x 224 (Table 5 row)" if _name.endswith("224") else "")
                + ", official NoBRS evaluation predictor (zoom-in, flip averaging)"
            ),
            input_size=_size,
            params_m=_params,
            checkpoint_files=CHECKPOINT_FILES[_variant],
            download_page=DOWNLOAD_PAGE,
            extra={"variant": _variant},
        )
    )


# --- CFR-ICL ----------------------------------------------------------------------------------
# CFR-ICL fine-tunes SimpleClick's PlainVitModel and saves it in SimpleClick's format (same
# state_dict names, shapes and checkpoint layout: golden/cfricl/statedict_vs_simpleclick_*.json),
# so the SimpleClick loader reads its checkpoints. Its README evaluates with `--cf-n=4 --acf`.

CFRICL_DEFAULTS: dict[str, object] = {"cf_n": 4, "acf": True, "cf_click": 1}
"""CFR-ICL README, "Evaluation": `scripts/evaluate_model.py NoBRS ... --cf-n=4 --acf`
(`--cf-click` left at its default 1)."""

CFRICL_RELEASE = "https://github.com/TitorX/CFR-ICL-Interactive-Segmentation/releases/tag/v1.0"
"""The only released CFR-ICL weights: `cocolvis_icl_vit_huge.pth`, as a 3-part 7z archive."""

# ViT-B and ViT-L: no ICL-trained weights were released (the repository has training configs
# for ViT-B and ViT-H only); SimpleClick's checkpoints give "SimpleClick + CFR".
CFRICL_CHECKPOINT_FILES: dict[str, tuple[str, ...]] = {
    "base": CHECKPOINT_FILES["base"],
    "large": CHECKPOINT_FILES["large"],
    "huge": ("cocolvis_icl_vit_huge.pth", *CHECKPOINT_FILES["huge"]),
}
CFRICL_DOWNLOAD_PAGE: dict[str, str] = {
    "base": DOWNLOAD_PAGE,
    "large": DOWNLOAD_PAGE,
    "huge": CFRICL_RELEASE,
}

_CFRICL_ENTRIES = [
    # name, variant, factory, Table 5 params (M) of the same network
    ("cfr-icl-vit-b", "base", "make_cfricl_vit_b", 96.46),
    ("cfr-icl-vit-l", "large", "make_cfricl_vit_l", 322.18),
    ("cfr-icl-vit-h", "huge", "make_cfricl_vit_h", 659.39),
]

for _name, _variant, _factory, _params in _CFRICL_ENTRIES:
    _weights = (
        "released CFR-ICL weights cocolvis_icl_vit_huge.pth (or a SimpleClick ViT-H checkpoint)"
        if _variant == "huge"
        else "no CFR-ICL weights of this size were released: SimpleClick's (SimpleClick + CFR)"
    )
    register_model(
        ModelSpec(
            name=_name,
            factory=f"{_PREDICTOR}:{_factory}",
            family="simpleclick",
            needs_weights=True,
            description=(
                f"CFR-ICL: {ARCHITECTURES[_variant]} with cascade-forward refinement, CFR-ICL's "
                f"defaults cf_n=4, acf=true (options cf_n, acf, cf_click); {_weights}"
            ),
            input_size=_CVPR,
            params_m=_params,
            checkpoint_files=CFRICL_CHECKPOINT_FILES[_variant],
            download_page=CFRICL_DOWNLOAD_PAGE[_variant],
            extra={"variant": _variant, "cascade": dict(CFRICL_DEFAULTS)},
        )
    )
