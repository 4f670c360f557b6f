"""Registry entries of the ClickSEG models: FocalClick (Chen et al., CVPR 2022) and CDNet
(Chen et al., ICCV 2021), as compared in SimpleClick's Table 2.

Kept cheap: no torch import here. The factories live in `bench.adapters.clickseg.predictor`.
`params_m` is thop's count of the coarse forward (golden/clickseg/README.md section 1: what a
SimpleClick-style Table 5 would print); the refiner adds 0.02 M (FocalClick).
"""

from __future__ import annotations

from bench.adapters import ModelSpec, register_model

DOWNLOAD_PAGE = "https://github.com/alibaba/ClickSEG#model-zoo"
"""ClickSEG README, model zoo (Google Drive links of the released COCO+LVIS / SBD weights)."""

# The official config scripts' MODEL_NAME (models/focalclick/*.py, models/cdnet/*.py); the
# released files are named after them.
CHECKPOINT_FILES: dict[str, tuple[str, ...]] = {
    "focalclick-segformer-b0-s2": ("segformerB0_S2_cclvs.pth", "segformerB0_S2_sbd.pth"),
    "focalclick-segformer-b3-s2": ("segformerB3_S2_cclvs.pth", "segformerB3_S2_sbd.pth"),
    "focalclick-hrnet18s-s2": ("hrnet18s_S2_cclvs.pth", "hrnet18s_S2_sbd.pth"),
    "cdnet-resnet34": ("cdnet_res34_cclvs.pth", "cdnet_res34_sbd.pth"),
}

ARCHITECTURES: dict[str, str] = {
    "focalclick-segformer-b0-s2": "FocalClick SegFormer-B0-S2 (MiT-B0, refiner)",
    "focalclick-segformer-b3-s2": "FocalClick SegFormer-B3-S2 (MiT-B3, refiner)",
    "focalclick-hrnet18s-s2": "FocalClick HRNet-18s-S2 (HRNet-18s + OCR-48, refiner)",
    "cdnet-resnet34": "CDNet ResNet-34 (DeepLabV3+, FDM, PixelDiffusion)",
}

INFER_SIZE: dict[str, int] = {
    "focalclick-segformer-b0-s2": 256,
    "focalclick-segformer-b3-s2": 256,
    "focalclick-hrnet18s-s2": 256,
    "cdnet-resnet34": 384,
}
"""`--infer-size` of the official trainval_scripts/val_*.sh (FocalClick); CDNet's predictor
hard-codes 384."""

_PARAMS_M = {
    "focalclick-segformer-b0-s2": 3.72,
    "focalclick-segformer-b3-s2": 45.66,
    "focalclick-hrnet18s-s2": 4.22,
    "cdnet-resnet34": 23.47,
}

REGISTERED = tuple(_PARAMS_M)

for _name in REGISTERED:
    _params = _PARAMS_M[_name]
    _focal = _name.startswith("focalclick")
    register_model(
        ModelSpec(
            name=_name,
            factory=f"bench.adapters.clickseg.predictor:make_{_name.replace('-', '_')}",
            family="clickseg",
            needs_weights=True,
            description=(
                f"{ARCHITECTURES[_name]}, official ClickSEG evaluation predictor ("
                + (
                    "FocalPredictor: zoom-in, focus crop + refiner, no flip"
                    if _focal
                    else "DiffisionPredictor: zoom-in, flip averaging, PixelDiffusion"
                )
                + ")"
            ),
            input_size=f"{INFER_SIZE[_name]} x {INFER_SIZE[_name]} (ROI crop resized)",
            params_m=_params,
            checkpoint_files=CHECKPOINT_FILES[_name],
            download_page=DOWNLOAD_PAGE,
            extra={"infer_size": INFER_SIZE[_name]},
        )
    )
