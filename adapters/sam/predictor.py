"""Registry factories and the predictor of the SAM family under the harness's click protocol.

Prompt protocol (defaults; each choice is a `--model-option`):

* every click so far is a point prompt, (x, y) = (column, row) in original-image pixels, label 1
  positive / 0 negative, in click order (SegNext `notebooks/eval_sam.ipynb`, `get_points_nd`);
* from the second click on, the previous click's low-resolution mask logits (256 x 256, the
  chosen mask's, unthresholded) are the `mask_input` (`mask_input=true`). SAM trains this way:
  "we supply the unthresholded mask logits ... the mask passed to the next iteration ... is the
  one with the highest predicted IoU" (Kirillov et al., ICCV 2023, appendix A, training
  algorithm); the official notebooks feed `logits[np.argmax(scores)]` back as `mask_input`
  ("Specifying a specific object with additional points", segment-anything
  `notebooks/predictor_example.ipynb`, sam2 `notebooks/image_predictor_example.ipynb`);
* `multimask=first`: three masks at the first click, the one with the highest predicted IoU
  taken, one mask afterwards. This is the official notebooks' pattern and the predictors'
  docstring advice (`SamPredictor.predict`: multimask output for ambiguous prompts "such as a
  single click", single output for "multiple input prompts"). `multimask=always` (three masks
  and the highest predicted IoU at every click) is what SegNext's SAM evaluation does
  (`notebooks/eval_sam.ipynb`: `predictor.predict(points, labels, mask_input=...)` with the
  default `multimask_output=True`, then `argmax(scores)`); `multimask=never` is single-mask
  throughout. SAM 2 networks are built with `build_sam2`'s default `apply_postprocessing=True`
  (single-mask output falls back to the best multimask output when unstable);
  `postprocessing=false` turns it off.

Output: the probability map is the sigmoid of the chosen mask's logits upsampled to the image
(the official `return_logits=True` masks), so the harness's `> 0.49` threshold applies
(`threshold=harness`). SAM's own masks are `logits > 0` (`Sam.mask_threshold = 0.0`,
`SAM2ImagePredictor(mask_threshold=0.0)`); `> 0.49` on the sigmoid is `logits > ln(0.49/0.51)
= -0.0400`, so the harness's mask can be larger by the pixels whose logits lie in (-0.040, 0].
`threshold=sam` lowers those pixels' probability to just under 0.49, which makes the harness's
binary mask exactly SAM's.

The image embedding is computed once per image (`start` / `open_instance`, through
`bench.adapters.sam.cache`: instances of the same image share one encoder pass; option
`embedding_cache=N` keeps the N most recent images, 0 encodes every instance) and reused for
every click. SAM-HQ's option `hq_token_only` (default false, the official predictor's default)
takes the HQ output token's mask alone instead of SAM's mask plus the HQ mask.
`predict_batch` serves any number of instances in flight, each at its own click.
By default it makes one decoder call per instance, so that every result is bit-identical to the
official predictor and independent of which instances share a call (the engine's promise). With
`batch_decoder=true`, SAM 2 decodes all instances whose prompts have the same shapes in one call
(`bench.adapters.sam.backends`); that changes logits by float rounding (measured on the CPU:
up to 6e-7 absolute on logits of magnitude <= 1.6, random weights), which can flip a pixel
that sits on the threshold. SAM's decoder serves one image per call in any case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bench.adapters.common.factory import DTYPES, flag, parse_options, runtime_record
from bench.adapters.sam import official
from bench.adapters.sam.backends import (
    Decoded,
    DecodeRequest,
    Embedding,
    Sam2Backend,
    SamBackend,
    SamHqBackend,
)
from bench.adapters.sam.cache import DEFAULT_MAX_IMAGES, DISABLED, EmbeddingCache
from bench.adapters.sam.checkpoint import (
    check_variant,
    checkpoint_record,
    load_weights,
    read_sam_checkpoint,
)
from bench.adapters.sam.models import VARIANTS, SamVariant, download_page
from bench.protocol import PRED_THR
from bench.sample import Click, Sample

MULTIMASK_RULES = ("first", "always", "never")
THRESHOLDS = ("harness", "sam")
SAM_OPTIONS = (
    "multimask",
    "mask_input",
    "threshold",
    "postprocessing",
    "batch_decoder",
    "hq_token_only",
    "embedding_cache",
)
FAMILY_OPTIONS = {"postprocessing": "sam2", "batch_decoder": "sam2", "hq_token_only": "sam-hq"}
JUST_BELOW_THRESHOLD = np.nextafter(np.float32(PRED_THR), np.float32(0))


@dataclass(frozen=True)
class PromptProtocol:
    """How clicks become prompts and which output becomes the prediction."""

    multimask: str = "first"  # MULTIMASK_RULES
    mask_input: bool = True
    threshold: str = "harness"  # THRESHOLDS

    def __post_init__(self) -> None:
        if self.multimask not in MULTIMASK_RULES:
            raise ValueError(f"multimask={self.multimask!r}: expected one of {MULTIMASK_RULES}")
        if self.threshold not in THRESHOLDS:
            raise ValueError(f"threshold={self.threshold!r}: expected one of {THRESHOLDS}")

    def multimask_at(self, n_clicks: int) -> bool:
        return self.multimask == "always" or (self.multimask == "first" and n_clicks == 1)


@dataclass(eq=False)
class SamInstance:
    """The handle of one instance in flight: its embedding and the previous click's mask."""

    sample_id: str
    embedding: Embedding
    previous_low_res: torch.Tensor | None = None  # 1 x 1 x 256 x 256, chosen mask
    clicks_predicted: int = 0


@dataclass(frozen=True)
class ClickOutput:
    """One click's result for one instance: the chosen mask and everything the decoder said."""

    index: int  # chosen output (argmax predicted IoU when several)
    logits: np.ndarray  # H x W float32, upsampled to the image
    low_res: np.ndarray  # 256 x 256 float32, fed back at the next click
    iou: np.ndarray  # C predicted IoUs (C = 3 with multimask output, else 1)
    probability: np.ndarray  # H x W float32, what the harness thresholds


def probability_map(logits: torch.Tensor, threshold: str) -> np.ndarray:
    """Sigmoid of the logits; with `threshold=sam`, `> 0.49` selects exactly `logits > 0`."""
    prob = torch.sigmoid(logits.float()).cpu().numpy().astype(np.float32, copy=False)
    if threshold == "sam":
        raw = logits.float().cpu().numpy()
        prob = np.where((raw <= 0) & (prob > JUST_BELOW_THRESHOLD), JUST_BELOW_THRESHOLD, prob)
    return prob.astype(np.float32, copy=False)


def _check_image(sample: Sample) -> np.ndarray:
    image = np.asarray(sample.image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"{sample.id}: SAM models take an H x W x 3 uint8 RGB image, got "
            f"{image.shape} {image.dtype}"
        )
    return np.ascontiguousarray(image)


class SamFamilyPredictor:
    """`start`/`predict` and the batched `open_instance`/`predict_batch` of one SAM network."""

    def __init__(
        self,
        backend: SamBackend | Sam2Backend,
        protocol: PromptProtocol,
        description: dict[str, Any],
        cache: EmbeddingCache[Embedding] | None = None,
    ) -> None:
        self.backend = backend
        self.protocol = protocol
        self.model = backend.network
        self.cache = cache
        self._description = description
        self._current: SamInstance | None = None

    # Single-instance interface -------------------------------------------------------------
    def start(self, sample: Sample) -> None:
        self._current = self.open_instance(sample)

    def predict(self, clicks: list[Click]) -> np.ndarray:
        if self._current is None:
            raise RuntimeError("predict() before start()")
        return self.predict_batch([(self._current, clicks)])[0]

    # Batched interface ---------------------------------------------------------------------
    def open_instance(self, sample: Sample) -> SamInstance:
        """The image's embedding (encoded now, or shared with an earlier instance of the same
        image); every click of the instance reuses it."""
        image = _check_image(sample)
        if self.cache is None:
            return SamInstance(sample.id, self.backend.encode(image))
        return SamInstance(sample.id, self.cache.get_or_encode(image, self.backend.encode))

    def predict_batch(self, requests: Sequence[tuple[SamInstance, Sequence[Click]]]) -> list:
        return [out.probability for out in self.predict_details(requests)]

    def predict_details(
        self, requests: Sequence[tuple[SamInstance, Sequence[Click]]]
    ) -> list[ClickOutput]:
        """One click of each listed instance; handles change only once every output exists."""
        prepared = [self._request(handle, clicks) for handle, clicks in requests]
        decoded: list[Decoded | None] = [None] * len(prepared)
        for multimask in (True, False):
            indices = [i for i, (_, mm) in enumerate(prepared) if mm == multimask]
            if indices:
                outputs = self.backend.decode([prepared[i][0] for i in indices], multimask)
                for i, output in zip(indices, outputs, strict=True):
                    decoded[i] = output
        results = [self._choose(d, mm) for d, (_, mm) in zip(decoded, prepared, strict=True)]
        for (handle, clicks), (chosen_low_res, _) in zip(requests, results, strict=True):
            handle.previous_low_res = chosen_low_res
            handle.clicks_predicted = len(clicks)
        return [result for _, result in results]

    def _request(self, handle: SamInstance, clicks: Sequence[Click]) -> tuple[DecodeRequest, bool]:
        if not clicks:
            raise ValueError(f"{handle.sample_id}: predict needs at least one click")
        n = len(clicks)
        feed = self.protocol.mask_input and n > 1 and handle.previous_low_res is not None
        request = DecodeRequest(
            embedding=handle.embedding,
            points_xy=np.array([[c.x, c.y] for c in clicks], dtype=np.float64),
            labels=np.array([1 if c.positive else 0 for c in clicks], dtype=np.int64),
            mask_input=handle.previous_low_res if feed else None,
        )
        return request, self.protocol.multimask_at(n)

    def _choose(self, decoded: Decoded | None, multimask: bool) -> tuple[torch.Tensor, Any]:
        assert decoded is not None
        index = int(torch.argmax(decoded.iou[0])) if multimask else 0
        low_res = decoded.low_res[:, index : index + 1]
        logits = decoded.logits[0, index]
        output = ClickOutput(
            index=index,
            logits=logits.cpu().numpy(),
            low_res=low_res[0, 0].cpu().numpy(),
            iou=decoded.iou[0].cpu().numpy(),
            probability=probability_map(logits, self.protocol.threshold),
        )
        return low_res, output

    def describe(self) -> dict[str, Any]:
        cache = DISABLED if self.cache is None else self.cache.describe()
        return {**self._description, "embedding_cache": dict(cache)}


def make_backend(
    variant: SamVariant,
    network: Any,
    device: torch.device,
    dtype: torch.dtype,
    batch_decoder: bool = False,
    hq_token_only: bool = False,
) -> SamBackend | Sam2Backend:
    if variant.family == "sam":
        return SamBackend(network, device, dtype)
    if variant.family == "sam-hq":
        return SamHqBackend(network, device, dtype, hq_token_only=hq_token_only)
    return Sam2Backend(network, device, dtype, batch_decoder=batch_decoder)


def predictor_for_network(
    variant: SamVariant,
    network: Any,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    protocol: PromptProtocol | None = None,
    batch_decoder: bool = False,
    hq_token_only: bool = False,
    embedding_cache: int = DEFAULT_MAX_IMAGES,
    record: dict[str, Any] | None = None,
) -> SamFamilyPredictor:
    """A predictor around an already built network (random or loaded; profile and tests).
    `embedding_cache`: images whose embeddings are kept for later instances (0: none)."""
    device = torch.device(device)
    protocol = protocol or PromptProtocol()
    network = network.to(device=device).eval()
    backend = make_backend(variant, network, device, dtype, batch_decoder, hq_token_only)
    description = {
        "model": variant.name,
        "architecture": variant.architecture,
        "package": variant.package,
        "builder": variant.builder_key,
        **(record or {}),
        "prompt_protocol": {
            "points": "every click so far, (x, y) = (col, row), label 1/0",
            "mask_input": "previous click's chosen low-res logits" if protocol.mask_input else None,
            "multimask": protocol.multimask,
            "selection": "argmax predicted IoU when several masks",
            "threshold": protocol.threshold,
        },
        "decoder_batching": backend.batches_decoder,
        "official_packages": official.package_versions(),
        "transforms": "bench.adapters.sam.transforms (torchvision-free, official predictors' "
        "equivalents)",
        "dtype": {v: k for k, v in DTYPES.items()}.get(dtype, str(dtype)),
        "device": str(device),
    }
    if variant.family == "sam2":
        decoder = network.sam_mask_decoder
        description["dynamic_multimask_via_stability"] = bool(
            decoder.dynamic_multimask_via_stability
        )
    if variant.family == "sam-hq":
        description["hq_token_only"] = hq_token_only
    if variant.builder_key == "vit_t":
        description["image_encoder"] = "bench.adapters.sam.tinyvit (TinyViT-5M, written here)"
    cache = EmbeddingCache(embedding_cache) if embedding_cache > 0 else None
    return SamFamilyPredictor(backend, protocol, description, cache)


def make_sam_predictor(name: str, **options: Any) -> SamFamilyPredictor:
    """Predictor of one registered SAM-family model from its official checkpoint.

    Options: `checkpoint`, `device`, `dtype`, `trust_checkpoint`, and `multimask`
    (first|always|never), `mask_input` (true|false), `threshold` (harness|sam),
    `postprocessing` (SAM 2: build_sam2's apply_postprocessing, default true),
    `batch_decoder` (SAM 2: one decoder call for the instances whose prompts have the same
    shapes, default false: its results differ from one instance per call by float rounding),
    `hq_token_only` (SAM-HQ: the HQ token's mask alone, default false), `embedding_cache`
    (images whose embeddings later instances reuse, default 4; 0 encodes every instance).
    """
    variant = VARIANTS[name]
    refused = sorted({"zoom_in", "flip"} & set(options))
    if refused:
        raise TypeError(
            f"{name}: options {refused} do not apply (the official SAM predictors use neither "
            "zoom-in nor flip averaging)"
        )
    opts = parse_options(
        name,
        options,
        checkpoint_files=(variant.checkpoint_file,),
        download_page=download_page(variant),
        extra=SAM_OPTIONS,
    )
    protocol = PromptProtocol(
        multimask=str(opts.extra.get("multimask", "first")),
        mask_input=flag("mask_input", opts.extra.get("mask_input", True)),
        threshold=str(opts.extra.get("threshold", "harness")),
    )
    postprocessing = flag("postprocessing", opts.extra.get("postprocessing", True))
    batch_decoder = flag("batch_decoder", opts.extra.get("batch_decoder", False))
    hq_token_only = flag("hq_token_only", opts.extra.get("hq_token_only", False))
    for option, family in FAMILY_OPTIONS.items():
        if option in opts.extra and variant.family != family:
            which = "SAM 2" if family == "sam2" else "SAM-HQ"
            raise TypeError(f"{name}: option {option} applies to {which} models only")
    embedding_cache = _cache_size(name, opts.extra.get("embedding_cache", DEFAULT_MAX_IMAGES))
    official.ensure_package(variant)  # fail fast, before hashing a large file
    checkpoint = read_sam_checkpoint(opts.checkpoint, trust=opts.trust_checkpoint)
    check_variant(checkpoint, variant)
    network = official.build_network(variant, sam2_postprocessing=postprocessing)
    load_weights(network, checkpoint, variant)
    network = network.to(dtype=torch.float32)
    return predictor_for_network(
        variant,
        network,
        device=opts.device,
        dtype=opts.dtype,
        protocol=protocol,
        batch_decoder=batch_decoder,
        hq_token_only=hq_token_only,
        embedding_cache=embedding_cache,
        record={**checkpoint_record(checkpoint), **runtime_record(opts)},
    )


def _cache_size(name: str, value: Any) -> int:
    """`embedding_cache`: a count of images (0 = off); true/false mean the default / 0."""
    text = str(value).strip().lower()
    if text in ("true", "yes", "on"):
        return DEFAULT_MAX_IMAGES
    if text in ("false", "no", "off"):
        return 0
    try:
        size = int(text)
    except ValueError:
        size = -1
    if size < 0:
        raise ValueError(
            f"{name}: embedding_cache={value!r}: expected a number of images (0 turns it off)"
        )
    return size


def make_sam_vit_b(**options: Any) -> SamFamilyPredictor:
    """`sam-vit-b`: SAM ViT-B (sam_vit_b_01ec64.pth)."""
    return make_sam_predictor("sam-vit-b", **options)


def make_sam_vit_l(**options: Any) -> SamFamilyPredictor:
    """`sam-vit-l`: SAM ViT-L (sam_vit_l_0b3195.pth)."""
    return make_sam_predictor("sam-vit-l", **options)


def make_sam_vit_h(**options: Any) -> SamFamilyPredictor:
    """`sam-vit-h`: SAM ViT-H (sam_vit_h_4b8939.pth)."""
    return make_sam_predictor("sam-vit-h", **options)


def make_sam2_hiera_t(**options: Any) -> SamFamilyPredictor:
    """`sam2-hiera-t`: SAM 2 Hiera-T (sam2_hiera_tiny.pt)."""
    return make_sam_predictor("sam2-hiera-t", **options)


def make_sam2_hiera_s(**options: Any) -> SamFamilyPredictor:
    """`sam2-hiera-s`: SAM 2 Hiera-S (sam2_hiera_small.pt)."""
    return make_sam_predictor("sam2-hiera-s", **options)


def make_sam2_hiera_b_plus(**options: Any) -> SamFamilyPredictor:
    """`sam2-hiera-b+`: SAM 2 Hiera-B+ (sam2_hiera_base_plus.pt)."""
    return make_sam_predictor("sam2-hiera-b+", **options)


def make_sam2_hiera_l(**options: Any) -> SamFamilyPredictor:
    """`sam2-hiera-l`: SAM 2 Hiera-L (sam2_hiera_large.pt)."""
    return make_sam_predictor("sam2-hiera-l", **options)


def make_sam2_1_hiera_t(**options: Any) -> SamFamilyPredictor:
    """`sam2.1-hiera-t`: SAM 2.1 Hiera-T (sam2.1_hiera_tiny.pt)."""
    return make_sam_predictor("sam2.1-hiera-t", **options)


def make_sam2_1_hiera_s(**options: Any) -> SamFamilyPredictor:
    """`sam2.1-hiera-s`: SAM 2.1 Hiera-S (sam2.1_hiera_small.pt)."""
    return make_sam_predictor("sam2.1-hiera-s", **options)


def make_sam2_1_hiera_b_plus(**options: Any) -> SamFamilyPredictor:
    """`sam2.1-hiera-b+`: SAM 2.1 Hiera-B+ (sam2.1_hiera_base_plus.pt)."""
    return make_sam_predictor("sam2.1-hiera-b+", **options)


def make_sam2_1_hiera_l(**options: Any) -> SamFamilyPredictor:
    """`sam2.1-hiera-l`: SAM 2.1 Hiera-L (sam2.1_hiera_large.pt)."""
    return make_sam_predictor("sam2.1-hiera-l", **options)


def make_sam_hq_vit_b(**options: Any) -> SamFamilyPredictor:
    """`sam-hq-vit-b`: HQ-SAM ViT-B (sam_hq_vit_b.pth)."""
    return make_sam_predictor("sam-hq-vit-b", **options)


def make_sam_hq_vit_l(**options: Any) -> SamFamilyPredictor:
    """`sam-hq-vit-l`: HQ-SAM ViT-L (sam_hq_vit_l.pth)."""
    return make_sam_predictor("sam-hq-vit-l", **options)


def make_sam_hq_vit_h(**options: Any) -> SamFamilyPredictor:
    """`sam-hq-vit-h`: HQ-SAM ViT-H (sam_hq_vit_h.pth)."""
    return make_sam_predictor("sam-hq-vit-h", **options)


def make_mobilesam(**options: Any) -> SamFamilyPredictor:
    """`mobilesam`: MobileSAM, TinyViT-5M encoder (mobile_sam.pt)."""
    return make_sam_predictor("mobilesam", **options)
