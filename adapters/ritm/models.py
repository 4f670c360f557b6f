"""Registry entries of the RITM iter-mask HRNet-OCR models (Sofiiuk et al., ICIP 2022).

Kept cheap: no torch import here. The factories live in `bench.adapters.ritm.predictor`.
Parameter counts follow the SimpleClick paper's Table 5 (thop convention; the full state_dict
has one more parameter, RITM's ScaleLayer scalar, golden/README.md section 1).
"""

from __future__ import annotations

from bench.adapters import ModelSpec, register_model

DOWNLOAD_PAGE = "https://github.com/SamsungLabs/ritm_interactive_segmentation/releases/tag/v1.0"
"""Official release v1.0 of SamsungLabs/ritm_interactive_segmentation (the released weights)."""

CHECKPOINT_FILES: dict[str, tuple[str, ...]] = {
    "hrnet18s": ("coco_lvis_h18s_itermask.pth",),
    "hrnet18": ("coco_lvis_h18_itermask.pth", "sbd_h18_itermask.pth"),
    "hrnet32": ("coco_lvis_h32_itermask.pth",),
}

ARCHITECTURES: dict[str, str] = {
    "hrnet18s": "RITM HRNet-18s + OCR-48 (iter-mask)",
    "hrnet18": "RITM HRNet-18 + OCR-64 (iter-mask)",
    "hrnet32": "RITM HRNet-32 + OCR-128 (iter-mask)",
}

_TABLE5_PARAMS_M = {"hrnet18s": 4.22, "hrnet18": 10.03, "hrnet32": 30.95}
_INPUT_SIZE = "native / ROI 400 (600 DAVIS)"

for _variant, _params in _TABLE5_PARAMS_M.items():
    register_model(
        ModelSpec(
            name=f"ritm-{_variant}",
            factory=f"bench.adapters.ritm.predictor:make_{_variant}",
            family="ritm",
            needs_weights=True,
            description=(
                f"{ARCHITECTURES[_variant]}, official NoBRS evaluation predictor "
                "(zoom-in, flip averaging)"
            ),
            input_size=_INPUT_SIZE,
            params_m=_params,
            checkpoint_files=CHECKPOINT_FILES[_variant],
            download_page=DOWNLOAD_PAGE,
        )
    )
