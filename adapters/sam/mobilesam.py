"""MobileSAM (`vit_t`): the TinyViT-5M image encoder written here (`bench.adapters.sam.tinyvit`)
with SAM's prompt encoder and mask decoder from the official `segment-anything` package.

The arguments are those of MobileSAM's `mobile_sam/build_sam.py:build_sam_vit_t` (commit
34bbbfd): prompt embedding 256, 64 x 64 image embedding of a 1024 input, mask_in_chans 16, three
multimask outputs, a two-way transformer of depth 2 (256 wide, MLP 2048, 8 heads), IoU head of
depth 3 / width 256, SAM's pixel mean and std. MobileSAM's `Sam`, `PromptEncoder`, `MaskDecoder`,
`TwoWayTransformer` and `SamPredictor` are copies of segment-anything's (same module names, same
computation), so the released `mobile_sam.pt` (a bare state_dict) loads strictly into this
network and `SamBackend` drives it as the official predictor does.
"""

from __future__ import annotations

import importlib

import torch

from bench.adapters.sam.tinyvit import TinyViT

PROMPT_EMBED_DIM = 256
IMAGE_SIZE = 1024
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def build_mobile_sam(model: str = "mobilesam") -> torch.nn.Module:
    """MobileSAM with untrained weights, on the CPU (segment-anything must be installed)."""
    from bench.adapters.sam import official

    official.segment_anything_builders(model)  # imports the package, torchvision or not
    modeling = importlib.import_module("segment_anything.modeling")
    embedding = IMAGE_SIZE // 16
    return modeling.Sam(
        image_encoder=TinyViT(),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=PROMPT_EMBED_DIM,
            image_embedding_size=(embedding, embedding),
            input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
            mask_in_chans=16,
        ),
        mask_decoder=modeling.MaskDecoder(
            num_multimask_outputs=3,
            transformer=modeling.TwoWayTransformer(
                depth=2, embedding_dim=PROMPT_EMBED_DIM, mlp_dim=2048, num_heads=8
            ),
            transformer_dim=PROMPT_EMBED_DIM,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )
