"""Image encoder and mask decoder calls of the official SAM / SAM 2 networks, one family each.

These are the calls the official predictors make, in the same order and with the same tensors:
`segment_anything/predictor.py` (`SamPredictor.set_image` / `set_torch_image` /
`predict` / `predict_torch`) and `sam2/sam2_image_predictor.py` (`SAM2ImagePredictor.set_image` /
`predict` / `_prep_prompts` / `_predict`). They are re-expressed rather than called because the
official predictors hold one image at a time (the batched engine keeps many instances in
flight) and because their modules import torchvision (`bench.adapters.sam.official`). Every
tensor the networks see is bit-identical to the official predictors' on the CPU in float32
(tests/test_sam_official.py).

A decoder call can serve several instances where the network allows it: SAM 2's mask decoder
takes one image embedding per prompt set (`repeat_image=False`, the mode
`SAM2Base._forward_sam_heads` uses for batches), so with `batch_decoder` the requests with the
same number of points and the same mask-input presence go in one call (off by default: batched
results differ from single ones by float rounding). SAM's mask decoder repeats a single image
embedding over its prompt batch (`MaskDecoder.predict_masks`: `repeat_interleave(
image_embeddings, ...)`), and the official `Sam.forward` itself loops over images, so SAM
decodes one instance per call.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.adapters.sam.transforms import (
    sam2_input_tensor,
    sam2_point_coords,
    sam_point_coords,
    sam_resized_image,
)

SAM2_LOW_RES_CLAMP = 32.0  # SAM2ImagePredictor._predict: torch.clamp(low_res_masks, -32, 32)


@dataclass(frozen=True, eq=False)
class Embedding:
    """What the image encoder leaves for the decoder, for one image."""

    original_size: tuple[int, int]  # H, W of the image as given
    image_embed: torch.Tensor  # 1 x 256 x 64 x 64
    input_size: tuple[int, int] = (0, 0)  # SAM: resized size before padding
    high_res: tuple[torch.Tensor, ...] = ()  # SAM 2: 1 x 32 x 256 x 256, 1 x 64 x 128 x 128
    # SAM-HQ: the ViT's output after its first global-attention block, 1 x 64 x 64 x width (the
    # official predictor keeps every global block's output; its decoder reads only the first).
    interm: tuple[torch.Tensor, ...] = ()

    def nbytes(self) -> int:
        """Memory held by the tensors (what the embedding cache bounds)."""
        tensors = (self.image_embed, *self.high_res, *self.interm)
        return sum(t.numel() * t.element_size() for t in tensors)


@dataclass(frozen=True, eq=False)
class DecodeRequest:
    """One instance's prompts for one decoder call."""

    embedding: Embedding
    points_xy: np.ndarray  # N x 2 float64, x (column) then y (row), original pixels
    labels: np.ndarray  # N int, 1 positive / 0 negative
    mask_input: torch.Tensor | None  # 1 x 1 x 256 x 256 logits of the previous click


@dataclass(frozen=True, eq=False)
class Decoded:
    """The decoder's outputs for one request, as the official predictors return them."""

    low_res: torch.Tensor  # 1 x C x 256 x 256 (SAM 2: clamped to [-32, 32])
    iou: torch.Tensor  # 1 x C predicted IoU
    logits: torch.Tensor  # 1 x C x H x W at the original size


def precision(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """float32: nothing; otherwise autocast, as the official READMEs run bfloat16."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class SamBackend:
    """`segment-anything`'s `Sam`: ViT encoder on the zero-padded 1024 image, one decode per
    instance."""

    family = "sam"
    batches_decoder = False

    def __init__(self, network: Any, device: torch.device, dtype: torch.dtype) -> None:
        self.network = network
        self.device = device
        self.dtype = dtype
        self.resolution = network.image_encoder.img_size

    @property
    def encoder_modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.network.image_encoder,)

    @property
    def decoder_modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.network.prompt_encoder, self.network.mask_decoder)

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> Embedding:
        resized = sam_resized_image(image, self.resolution)
        tensor = torch.as_tensor(resized, device=self.device)
        tensor = tensor.permute(2, 0, 1).contiguous()[None, :, :, :]
        with precision(self.device, self.dtype):
            features = self.network.image_encoder(self.network.preprocess(tensor))
        return Embedding(
            original_size=tuple(image.shape[:2]),
            image_embed=features,
            input_size=tuple(tensor.shape[-2:]),
        )

    @torch.no_grad()
    def decode(self, requests: list[DecodeRequest], multimask: bool) -> list[Decoded]:
        return [self._decode_one(request, multimask) for request in requests]

    def _decode_one(self, request: DecodeRequest, multimask: bool) -> Decoded:
        embedding = request.embedding
        coords = sam_point_coords(request.points_xy, embedding.original_size, self.resolution)
        coords_t = torch.as_tensor(coords, dtype=torch.float, device=self.device)[None, :, :]
        labels_t = torch.as_tensor(request.labels, dtype=torch.int, device=self.device)[None, :]
        network = self.network
        with precision(self.device, self.dtype):
            sparse, dense = network.prompt_encoder(
                points=(coords_t, labels_t), boxes=None, masks=request.mask_input
            )
            low_res, iou = network.mask_decoder(
                image_embeddings=embedding.image_embed,
                image_pe=network.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
                **self._decoder_arguments(embedding),
            )
            logits = network.postprocess_masks(
                low_res, embedding.input_size, embedding.original_size
            )
        return Decoded(low_res=low_res.float(), iou=iou.float(), logits=logits.float())

    def _decoder_arguments(self, embedding: Embedding) -> dict[str, Any]:
        """What a decoder beyond segment-anything's takes besides the prompts (SAM-HQ's)."""
        return {}


class SamHqBackend(SamBackend):
    """`segment-anything-hq`'s `Sam` as its `SamPredictor` drives it (segment_anything_hq/
    predictor.py): the ViT encoder also returns its global blocks' outputs, and `MaskDecoderHQ`
    takes the first of them and `hq_token_only`. With `multimask_output` the HQ decoder itself
    keeps the best of the three SAM masks by predicted IoU and returns one mask (SAM's + HQ's,
    or HQ's alone), so every call gives one output."""

    family = "sam-hq"

    def __init__(
        self, network: Any, device: torch.device, dtype: torch.dtype, hq_token_only: bool = False
    ) -> None:
        super().__init__(network, device, dtype)
        self.hq_token_only = hq_token_only

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> Embedding:
        resized = sam_resized_image(image, self.resolution)
        tensor = torch.as_tensor(resized, device=self.device)
        tensor = tensor.permute(2, 0, 1).contiguous()[None, :, :, :]
        with precision(self.device, self.dtype):
            features, interm = self.network.image_encoder(self.network.preprocess(tensor))
        return Embedding(
            original_size=tuple(image.shape[:2]),
            image_embed=features,
            input_size=tuple(tensor.shape[-2:]),
            interm=(interm[0],),
        )

    def _decoder_arguments(self, embedding: Embedding) -> dict[str, Any]:
        return {"hq_token_only": self.hq_token_only, "interm_embeddings": list(embedding.interm)}


class Sam2Backend:
    """`sam2`'s `SAM2Base` as `SAM2ImagePredictor` drives it: Hiera encoder on the image resized
    to 1024 x 1024, high-resolution features, decoder calls batched over instances."""

    family = "sam2"

    def __init__(
        self, network: Any, device: torch.device, dtype: torch.dtype, batch_decoder: bool = False
    ) -> None:
        self.network = network
        self.device = device
        self.dtype = dtype
        self.batches_decoder = batch_decoder
        self.resolution = network.image_size
        # SAM2ImagePredictor._bb_feat_sizes for image_size 1024: strides 4, 8 and 16.
        self.feature_sizes = [(self.resolution // s, self.resolution // s) for s in (4, 8, 16)]

    @property
    def encoder_modules(self) -> tuple[torch.nn.Module, ...]:
        decoder = self.network.sam_mask_decoder
        convs = (decoder.conv_s0, decoder.conv_s1) if hasattr(decoder, "conv_s0") else ()
        return (self.network.image_encoder, *convs)

    @property
    def decoder_modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.network.sam_prompt_encoder, self.network.sam_mask_decoder)

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> Embedding:
        network = self.network
        tensor = sam2_input_tensor(image, self.resolution)[None, ...].to(self.device)
        with precision(self.device, self.dtype):
            backbone_out = network.forward_image(tensor)
            _, vision_feats, _, _ = network._prepare_backbone_features(backbone_out)
            if network.directly_add_no_mem_embed:
                vision_feats[-1] = vision_feats[-1] + network.no_mem_embed
        feats = [
            feat.permute(1, 2, 0).view(1, -1, *size)
            for feat, size in zip(vision_feats[::-1], self.feature_sizes[::-1], strict=True)
        ][::-1]
        return Embedding(
            original_size=tuple(image.shape[:2]), image_embed=feats[-1], high_res=tuple(feats[:-1])
        )

    @torch.no_grad()
    def decode(self, requests: list[DecodeRequest], multimask: bool) -> list[Decoded]:
        """One decoder call per group of requests with the same prompt shapes (or per request
        with `batch_decoder=False`); results in the order of `requests`."""
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            key = (len(request.labels), request.mask_input is not None)
            groups.setdefault(key if self.batches_decoder else (i,), []).append(i)
        results: list[Decoded | None] = [None] * len(requests)
        for indices in groups.values():
            outputs = self._decode_group([requests[i] for i in indices], multimask)
            for i, output in zip(indices, outputs, strict=True):
                results[i] = output
        return results  # type: ignore[return-value]

    def _decode_group(self, requests: list[DecodeRequest], multimask: bool) -> list[Decoded]:
        network = self.network
        coords = torch.stack(
            [
                sam2_point_coords(
                    r.points_xy, r.embedding.original_size, self.resolution, self.device
                )
                for r in requests
            ]
        )
        labels = torch.stack(
            [torch.as_tensor(r.labels, dtype=torch.int, device=self.device) for r in requests]
        )
        masks = None
        if requests[0].mask_input is not None:
            masks = _batch([r.mask_input for r in requests])
        image_embed = _batch([r.embedding.image_embed for r in requests])
        high_res = [
            _batch([r.embedding.high_res[level] for r in requests])
            for level in range(len(requests[0].embedding.high_res))
        ]
        with precision(self.device, self.dtype):
            sparse, dense = network.sam_prompt_encoder(
                points=(coords, labels), boxes=None, masks=masks
            )
            low_res, iou, _, _ = network.sam_mask_decoder(
                image_embeddings=image_embed,
                image_pe=network.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
                repeat_image=False,
                high_res_features=high_res,
            )
        decoded = []
        for i, request in enumerate(requests):
            # SAM2Transforms.postprocess_masks with max_hole_area = max_sprinkle_area = 0 (the
            # SAM2ImagePredictor defaults): float, then bilinear to the original size.
            item = low_res[i : i + 1].float()
            logits = F.interpolate(
                item, request.embedding.original_size, mode="bilinear", align_corners=False
            )
            decoded.append(
                Decoded(
                    low_res=torch.clamp(item, -SAM2_LOW_RES_CLAMP, SAM2_LOW_RES_CLAMP),
                    iou=iou[i : i + 1].float(),
                    logits=logits,
                )
            )
        return decoded


def _batch(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along the batch axis; a single tensor is passed through as is."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)
