"""Registry entries of the SAM family: Segment Anything (Kirillov et al., ICCV 2023), SAM 2 /
SAM 2.1 (Ravi et al., 2024), HQ-SAM (Ke et al., "Segment Anything in High Quality", NeurIPS
2023) and MobileSAM (Zhang et al., "Faster Segment Anything", 2023), run through the official
PyPI packages `segment-anything`, `sam2` and `segment-anything-hq`; MobileSAM's TinyViT image
encoder is written here (`bench.adapters.sam.tinyvit`), its prompt encoder and mask decoder are
segment-anything's.

Kept cheap: no torch import and no import of the official packages here, so `bench models list`
stays fast and can say what to install when a package is missing. The factories live in
`bench.adapters.sam.predictor`.

`params_m` is the full parameter count of the network the official builder makes (every
parameter of the state_dict; for SAM 2 that includes the video-memory modules an image
predictor never runs); `PUBLISHED_PARAMS_M` holds the figures the authors print, with where.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.adapters import ModelSpec, register_model

SAM_PACKAGE = "segment-anything"
SAM2_PACKAGE = "sam2"
SAM_HQ_PACKAGE = "segment-anything-hq"

SAM_DOWNLOAD_PAGE = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
SAM2_DOWNLOAD_PAGE = "https://github.com/facebookresearch/sam2#download-checkpoints"
"""SAM 2.1 checkpoints (README "Download Checkpoints"); the SAM 2 ones are listed under the
README's "SAM 2 checkpoints" heading of the same page."""
SAM_HQ_DOWNLOAD_PAGE = "https://github.com/SysCV/sam-hq#model-checkpoints"
MOBILESAM_DOWNLOAD_PAGE = "https://github.com/ChaoningZhang/MobileSAM/tree/master/weights"

INSTALL_HINT = {
    SAM_PACKAGE: 'pip install -e ".[sam]"  (or: pip install segment-anything)',
    SAM2_PACKAGE: (
        'pip install -e ".[sam]" && pip install --no-deps "sam2>=1.0"  (--no-deps: sam2 '
        "declares torchvision, whose PyPI wheels replace or break a CPU torch; the adapter "
        "does not need torchvision)"
    ),
    SAM_HQ_PACKAGE: (
        'pip install -e ".[sam]" && pip install --no-deps "segment-anything-hq>=0.3"  '
        "(--no-deps: it declares torchvision, which the adapter does not need)"
    ),
}
IMPORT_NAME = {
    SAM_PACKAGE: "segment_anything",
    SAM2_PACKAGE: "sam2",
    SAM_HQ_PACKAGE: "segment_anything_hq",
}
MOBILESAM_KEY = "vit_t"  # MobileSAM's sam_model_registry key (mobile_sam/build_sam.py)


@dataclass(frozen=True)
class SamVariant:
    """One released network: how the official package builds it and which file holds it."""

    name: str  # registry name
    package: str  # SAM_PACKAGE, SAM2_PACKAGE or SAM_HQ_PACKAGE
    builder_key: str  # `sam_model_registry` key, or the sam2 Hydra config name
    architecture: str
    checkpoint_file: str
    params_m: float  # full count of the built network / 1e6

    @property
    def family(self) -> str:
        """Which backend drives it: "sam" (SAM, MobileSAM), "sam-hq" or "sam2"."""
        return {SAM_PACKAGE: "sam", SAM_HQ_PACKAGE: "sam-hq"}.get(self.package, "sam2")


VARIANTS: dict[str, SamVariant] = {
    v.name: v
    for v in (
        SamVariant(
            "sam-vit-b", SAM_PACKAGE, "vit_b", "SAM ViT-B/16", "sam_vit_b_01ec64.pth", 93.74
        ),
        SamVariant(
            "sam-vit-l", SAM_PACKAGE, "vit_l", "SAM ViT-L/16", "sam_vit_l_0b3195.pth", 312.34
        ),
        SamVariant(
            "sam-vit-h", SAM_PACKAGE, "vit_h", "SAM ViT-H/16", "sam_vit_h_4b8939.pth", 641.09
        ),
        SamVariant(
            "sam2-hiera-t",
            SAM2_PACKAGE,
            "configs/sam2/sam2_hiera_t.yaml",
            "SAM 2 Hiera-T",
            "sam2_hiera_tiny.pt",
            38.95,
        ),
        SamVariant(
            "sam2-hiera-s",
            SAM2_PACKAGE,
            "configs/sam2/sam2_hiera_s.yaml",
            "SAM 2 Hiera-S",
            "sam2_hiera_small.pt",
            46.04,
        ),
        SamVariant(
            "sam2-hiera-b+",
            SAM2_PACKAGE,
            "configs/sam2/sam2_hiera_b+.yaml",
            "SAM 2 Hiera-B+",
            "sam2_hiera_base_plus.pt",
            80.83,
        ),
        SamVariant(
            "sam2-hiera-l",
            SAM2_PACKAGE,
            "configs/sam2/sam2_hiera_l.yaml",
            "SAM 2 Hiera-L",
            "sam2_hiera_large.pt",
            224.43,
        ),
        SamVariant(
            "sam2.1-hiera-t",
            SAM2_PACKAGE,
            "configs/sam2.1/sam2.1_hiera_t.yaml",
            "SAM 2.1 Hiera-T",
            "sam2.1_hiera_tiny.pt",
            38.96,
        ),
        SamVariant(
            "sam2.1-hiera-s",
            SAM2_PACKAGE,
            "configs/sam2.1/sam2.1_hiera_s.yaml",
            "SAM 2.1 Hiera-S",
            "sam2.1_hiera_small.pt",
            46.06,
        ),
        SamVariant(
            "sam2.1-hiera-b+",
            SAM2_PACKAGE,
            "configs/sam2.1/sam2.1_hiera_b+.yaml",
            "SAM 2.1 Hiera-B+",
            "sam2.1_hiera_base_plus.pt",
            80.85,
        ),
        SamVariant(
            "sam2.1-hiera-l",
            SAM2_PACKAGE,
            "configs/sam2.1/sam2.1_hiera_l.yaml",
            "SAM 2.1 Hiera-L",
            "sam2.1_hiera_large.pt",
            224.45,
        ),
        SamVariant(
            "sam-hq-vit-b", SAM_HQ_PACKAGE, "vit_b", "HQ-SAM ViT-B/16", "sam_hq_vit_b.pth", 94.81
        ),
        SamVariant(
            "sam-hq-vit-l", SAM_HQ_PACKAGE, "vit_l", "HQ-SAM ViT-L/16", "sam_hq_vit_l.pth", 313.68
        ),
        SamVariant(
            "sam-hq-vit-h", SAM_HQ_PACKAGE, "vit_h", "HQ-SAM ViT-H/16", "sam_hq_vit_h.pth", 642.69
        ),
        SamVariant(
            "mobilesam",
            SAM_PACKAGE,
            MOBILESAM_KEY,
            "MobileSAM (TinyViT-5M)",
            "mobile_sam.pt",
            10.13,
        ),
    )
}


@dataclass(frozen=True)
class PublishedParams:
    """A parameter count the authors print, what it covers and where it is printed."""

    millions: float
    decimals: int  # precision of the printed figure
    scope: str  # "network" (whole model) or a top-level module name
    source: str


_SAM_PAPER = (
    "Kirillov et al., Segment Anything, ICCV 2023, ablation of the image encoder size "
    "(section 7.6, Fig. 13): ViT-B 91M, ViT-L 308M, ViT-H 636M parameters"
)
_SAM2_README = 'facebookresearch/sam2 README.md, "Model Description" tables, "Size (M)"'

PUBLISHED_PARAMS_M: dict[str, PublishedParams] = {
    "sam-vit-b": PublishedParams(91, 0, "image_encoder", _SAM_PAPER),
    "sam-vit-l": PublishedParams(308, 0, "image_encoder", _SAM_PAPER),
    "sam-vit-h": PublishedParams(636, 0, "image_encoder", _SAM_PAPER),
    "sam2-hiera-t": PublishedParams(38.9, 1, "network", _SAM2_README),
    "sam2-hiera-s": PublishedParams(46, 0, "network", _SAM2_README),
    "sam2-hiera-b+": PublishedParams(80.8, 1, "network", _SAM2_README),
    "sam2-hiera-l": PublishedParams(224.4, 1, "network", _SAM2_README),
    "sam2.1-hiera-t": PublishedParams(38.9, 1, "network", _SAM2_README),
    "sam2.1-hiera-s": PublishedParams(46, 0, "network", _SAM2_README),
    "sam2.1-hiera-b+": PublishedParams(80.8, 1, "network", _SAM2_README),
    "sam2.1-hiera-l": PublishedParams(224.4, 1, "network", _SAM2_README),
}

_INPUT_SIZE = {
    SAM_PACKAGE: "1024 (longest side, zero-padded to 1024 x 1024)",
    SAM2_PACKAGE: "1024 x 1024 (resized, aspect not kept)",
    SAM_HQ_PACKAGE: "1024 (longest side, zero-padded to 1024 x 1024)",
}
_PREDICTOR = "bench.adapters.sam.predictor"


def factory_name(name: str) -> str:
    """`sam2.1-hiera-b+` -> `make_sam2_1_hiera_b_plus` (the function in predictor.py)."""
    return "make_" + name.replace(".", "_").replace("-", "_").replace("+", "_plus")


def download_page(variant: SamVariant) -> str:
    if variant.builder_key == MOBILESAM_KEY:
        return MOBILESAM_DOWNLOAD_PAGE
    return {SAM_PACKAGE: SAM_DOWNLOAD_PAGE, SAM_HQ_PACKAGE: SAM_HQ_DOWNLOAD_PAGE}.get(
        variant.package, SAM2_DOWNLOAD_PAGE
    )


def describe_variant(variant: SamVariant) -> str:
    """The registry description: what runs the network and the prompt protocol."""
    protocol = (
        "image embedding once per image (embedding_cache), every click as a point prompt, "
        "previous low-res logits as mask input (params: full count)"
    )
    if variant.builder_key == MOBILESAM_KEY:
        return (
            f"{variant.architecture}: TinyViT-5M image encoder written here (no timm), prompt "
            f"encoder and mask decoder from the official `{SAM_PACKAGE}` package; {protocol}"
        )
    if variant.package == SAM_HQ_PACKAGE:
        return (
            f"{variant.architecture} through the official `{variant.package}` package (HQ output "
            f"token added to SAM's mask, or alone with hq_token_only=true); {protocol}"
        )
    return f"{variant.architecture} through the official `{variant.package}` package; {protocol}"


for _variant in VARIANTS.values():
    register_model(
        ModelSpec(
            name=_variant.name,
            factory=f"{_PREDICTOR}:{factory_name(_variant.name)}",
            family=_variant.family,
            needs_weights=True,
            description=describe_variant(_variant),
            input_size=_INPUT_SIZE[_variant.package],
            params_m=_variant.params_m,
            checkpoint_files=(_variant.checkpoint_file,),
            download_page=download_page(_variant),
            extra={
                "variant": _variant.builder_key,
                "package": _variant.package,
                "import_name": IMPORT_NAME[_variant.package],
                "install": INSTALL_HINT[_variant.package],
            },
        )
    )
