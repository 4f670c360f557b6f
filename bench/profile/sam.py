"""`bench profile` rows of the SAM family, with the image encoder and the decoder apart.

Why apart: SAM and SAM 2 compute the image embedding once per instance (`start` /
`open_instance`) and run only the prompt encoder and mask decoder at each click, while
SimpleClick and RITM run their whole network at every click. One "seconds per click" would
either hide SAM's encoder or charge it to every click, so every cost comes in two parts:

* FLOPs: the encoder pass (SAM: `image_encoder` on the 1 x 3 x 1024 x 1024 input; SAM 2:
  `forward_image`, i.e. the Hiera trunk and FPN neck plus the mask decoder's `conv_s0` /
  `conv_s1` projections it precomputes) and one decoder pass (prompt encoder + mask decoder for
  a second click: two points, the previous low-res mask as input, single-mask output), each
  counted by thop (`gflops_*_paper`, 2 x MACs of thop-counted modules) and by torch's
  FlopCounterMode (`gflops_*_full`). `gflops_paper` / `gflops_full` are the first click's cost,
  encoder + one decoder pass. The upsampling of the chosen mask to the image is counted by
  neither (no matmul or convolution).
* Parameters: `params_M` is the full count of the built network (SAM 2 includes the video-memory
  modules an image predictor never runs); `params_encoder_M` is `image_encoder`,
  `params_decoder_M` the prompt encoder + mask decoder (module membership, so SAM 2's
  `conv_s0`/`conv_s1`, 25k parameters run with the encoder, count here); `params_thop_M` is
  thop's count over both passes (thop counts the parameters of the modules it hooked and saw
  run: no relative position tables, no video-memory modules).
* Time: `spc_encoder_median_s` / `_iqr_s` is the image encoder's forward per instance
  (synchronised hooks, as for the other models' network share), `spc_start_median_s` the whole
  `start()` (image transforms + encoder; what `bench run` stores as `start_s`), both over the
  instances after the first (warm-up) when there are several. `spc_model_median_s` is the
  decoder's forward per click (prompt encoder + mask decoder), `spc_harness_median_s` the rest of
  each click (prompt preparation, mask upsampling, sigmoid, click rule, IoU).
* Peak memory: the resident network plus one first click (encoder + decoder) after an
  unmeasured warm-up click, as `bench.profile.memory` measures it.

Random weights cost the same as the released ones; `--checkpoint` loads an official file
strictly (`bench.adapters.sam.checkpoint`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.profile import clicks as profile_clicks
from bench.profile import counts as profile_counts
from bench.profile import memory as profile_memory
from bench.sample import Click, Sample, SampleView, is_oracle

SAM_FAMILIES = ("sam", "sam-hq", "sam2")
META_FAMILIES = ("sam", "sam-hq")  # counted on the meta device (their builders read no values)
SAM_INPUT_SIZE = 1024
TIMING_SPLIT = "encoder once per instance (start), decoder per click"
DECODER_PASS = "second click: 2 points + previous low-res mask, single-mask output"


def sam_targets() -> dict[str, Any]:
    """`ProfileTarget`s of every registered SAM-family model (variant = registry name)."""
    from bench.adapters.sam.models import VARIANTS
    from bench.profile import ProfileTarget

    return {
        name: ProfileTarget(
            name,
            variant.family,
            name,
            SAM_INPUT_SIZE,
            variant.architecture,
        )
        for name, variant in VARIANTS.items()
    }


def _variant(target: Any):
    from bench.adapters.sam.models import VARIANTS

    return VARIANTS[target.variant]


def build_network(
    target: Any, device: torch.device | str = "cpu", checkpoint: Path | str | None = None
) -> nn.Module:
    """The official builder's network on `device` (SAM on "meta" for shapes only), eval mode;
    with `checkpoint`, the official file loaded strictly (refused if of another variant)."""
    from bench.adapters.sam import official
    from bench.adapters.sam.checkpoint import check_variant, load_weights, read_sam_checkpoint

    variant = _variant(target)
    if str(device) == "meta":
        if checkpoint is not None:  # shapes only: the strict check runs on the real load
            check_variant(read_sam_checkpoint(checkpoint), variant)
        with torch.device("meta"):
            network = official.construct(variant)
        # `Sam.pixel_mean/std` come from the legacy `torch.Tensor(list)`, which ignores the
        # device context: move them too.
        return network.to("meta").eval()
    network = official.build_network(variant)
    if checkpoint is not None:
        loaded = read_sam_checkpoint(checkpoint)
        check_variant(loaded, variant)
        load_weights(network, loaded, variant)
    return network.to(device).eval()


class _Pass(nn.Module):
    """One encoder or decoder pass of the adapter's backend as a module, for the counters."""

    def __init__(self, network: nn.Module, run: Callable[[], object]) -> None:
        super().__init__()
        self.network = network
        self._run = run

    def forward(self, *unused: object) -> object:
        return self._run()


def _synthetic_image() -> np.ndarray:
    """A 768 x 1024 RGB image: SAM pads it to 1024 x 1024, SAM 2 resizes it; the counts do not
    depend on the values or on the original size."""
    return np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)


def _decoder_request(backend: Any, embedding: Any) -> Any:
    from bench.adapters.sam.backends import DecodeRequest

    mask = torch.zeros(1, 1, 256, 256, device=embedding.image_embed.device)
    return DecodeRequest(
        embedding=embedding,
        points_xy=np.array([[400.0, 300.0], [100.0, 50.0]]),
        labels=np.array([1, 0]),
        mask_input=mask,
    )


@dataclass(frozen=True)
class SamCounts:
    params: profile_counts.ParamCounts
    encoder_paper: profile_counts.PaperCount
    decoder_paper: profile_counts.PaperCount
    encoder_full: int
    decoder_full: int
    thop_params: int


def count_sam_network(target: Any, checkpoint: Path | str | None = None) -> SamCounts:
    """Parameters and the two passes' FLOPs; SAM on the meta device, SAM 2 on the CPU (Hiera's
    constructor reads tensor values)."""
    device = "meta" if target.family in META_FAMILIES else "cpu"
    network = build_network(target, device, checkpoint)
    params = profile_counts.count_parameters(network)
    backend = _backend(target, network, torch.device(device), torch.float32)
    image = _synthetic_image()
    encoder = _Pass(network, lambda meta_or_cpu=backend: meta_or_cpu.encode(image))
    if device == "meta":
        # The prompt encoder indexes with boolean masks (data-dependent shapes), which the meta
        # device cannot run: the small decoder modules get CPU storage (zeros) instead.
        with torch.no_grad():
            for module in (network.prompt_encoder, network.mask_decoder):
                module.to_empty(device="cpu")
                for tensor in (*module.parameters(), *module.buffers()):
                    tensor.zero_()
        backend = _backend(target, network, torch.device("cpu"), torch.float32)
    embedding = _embedding_like(target, image, network)
    request = _decoder_request(backend, embedding)
    decoder = _Pass(network, lambda cpu=backend: cpu.decode([request], False))
    encoder_paper = profile_counts.count_paper_flops_on(encoder, ())
    decoder_paper = profile_counts.count_paper_flops_on(decoder, ())
    encoder_full, _ = profile_counts.count_full_flops_on(encoder, ())
    decoder_full, _ = profile_counts.count_full_flops_on(decoder, ())
    return SamCounts(
        params,
        encoder_paper,
        decoder_paper,
        encoder_full,
        decoder_full,
        thop_params=encoder_paper.params + decoder_paper.params,
    )


def _embedding_like(target: Any, image: np.ndarray, network: nn.Module) -> Any:
    """The encoder's output for `image` as CPU zeros (the decoder's FLOPs depend on shapes only),
    without running the encoder; SAM-HQ's also holds the ViT map its decoder reads."""
    from bench.adapters.sam.backends import Embedding
    from bench.adapters.sam.transforms import sam_preprocess_shape

    size = tuple(image.shape[:2])
    embed = torch.zeros(1, 256, 64, 64)
    if target.family in META_FAMILIES:
        interm = ()
        if target.family == "sam-hq":
            width = network.image_encoder.patch_embed.proj.out_channels
            interm = (torch.zeros(1, 64, 64, width),)
        input_size = sam_preprocess_shape(*size, SAM_INPUT_SIZE)
        return Embedding(size, embed, input_size=input_size, interm=interm)
    high_res = (torch.zeros(1, 32, 256, 256), torch.zeros(1, 64, 128, 128))
    return Embedding(size, embed, high_res=high_res)


def _backend(target: Any, network: nn.Module, device: torch.device, dtype: torch.dtype) -> Any:
    from bench.adapters.sam.predictor import make_backend

    return make_backend(_variant(target), network, device, dtype)


def predictor(target: Any, network: nn.Module, device: torch.device, dtype: torch.dtype) -> Any:
    """The adapter's predictor (default prompt protocol) around a built network, without the
    embedding cache: every timed instance is one encoder pass, whatever the dataset."""
    from bench.adapters.sam.predictor import predictor_for_network

    return predictor_for_network(
        _variant(target), network, device=device, dtype=dtype, embedding_cache=0
    )


def measure_memory(
    target: Any,
    device: torch.device,
    dtype: torch.dtype,
    checkpoint: Path | str | None = None,
) -> tuple[nn.Module, profile_memory.PeakMemory]:
    """Peak memory of the resident network plus one first click (encoder + decoder)."""
    image = _synthetic_image()
    first_click = [Click(384, 512, True)]

    def prepare() -> Any:
        network = build_network(target, device, checkpoint)
        timed = predictor(target, network, device, dtype)
        run(timed)  # warm-up
        return timed

    def run(timed: Any) -> None:
        handle = timed.open_instance(SampleView("memory", image, ""))
        timed.predict_batch([(handle, first_click)])

    built, memory = profile_memory.measure_peak_memory(prepare, run, device)
    return built, memory


@dataclass(frozen=True)
class EncoderTimes:
    encoder_s: list[float]  # image encoder forward per instance
    start_s: list[float]  # whole start() per instance


class _TimedStart:
    """The predictor, with each `start` timed (wall and encoder forward) for the encoder split."""

    def __init__(self, inner: Any, encoder_durations: list[float], device: torch.device) -> None:
        self.inner = inner
        self.encoder_durations = encoder_durations
        self.device = device
        self.times = EncoderTimes([], [])
        self.oracle = is_oracle(inner)  # the wrapper passes on what the inner predictor gets

    def start(self, sample: Sample | SampleView) -> None:
        profile_clicks._synchronize(self.device)
        seen = len(self.encoder_durations)
        tic = time.perf_counter()
        self.inner.start(sample)
        profile_clicks._synchronize(self.device)
        self.times.start_s.append(time.perf_counter() - tic)
        self.times.encoder_s.append(float(sum(self.encoder_durations[seen:])))

    def predict(self, clicks: list[Click]) -> np.ndarray:
        return self.inner.predict(clicks)


def time_sam_clicks(
    timed_predictor: Any,
    samples: Iterable[Sample],
    device: torch.device,
    max_clicks: int,
) -> tuple[list[profile_clicks.ClickTime], EncoderTimes]:
    """`bench run`'s loop over `samples`: decoder time per click, encoder time per instance."""
    backend = timed_predictor.backend
    with profile_clicks.forward_timer(backend.encoder_modules, device) as encoder_durations:
        timed = _TimedStart(timed_predictor, encoder_durations, device)
        times = profile_clicks.time_clicks(
            timed, backend.decoder_modules, samples, device, max_clicks
        )
    return times, timed.times


@dataclass(frozen=True)
class EncoderSummary:
    encoder_median_s: float
    encoder_iqr_s: float
    start_median_s: float
    instances: int  # timed instances (the first is left out as warm-up when there are several)


def summarize_encoder(times: EncoderTimes) -> EncoderSummary:
    skip = 1 if len(times.encoder_s) > 1 else 0
    encoder = np.array(times.encoder_s[skip:])
    start = np.array(times.start_s[skip:])
    median, iqr = profile_clicks._median_iqr(encoder)
    return EncoderSummary(median, iqr, profile_clicks._median_iqr(start)[0], len(encoder))


def profile_sam(
    target: Any,
    size: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    checkpoint: Path | str | None = None,
    samples: Callable[[], Iterable[Sample]] | None = None,
    dataset: str = "",
    max_clicks: int = profile_clicks.DEFAULT_MAX_CLICKS,
    warmup_clicks: int = profile_clicks.DEFAULT_WARMUP_CLICKS,
):
    """One `ProfileRow` of a SAM-family model (its encoder input is always 1024 x 1024)."""
    from bench import profile

    if size != SAM_INPUT_SIZE:
        raise ValueError(
            f"{target.name}: the image encoder runs at {SAM_INPUT_SIZE} x {SAM_INPUT_SIZE} only "
            f"(got --sizes {size})"
        )
    device = torch.device(device)
    counts = count_sam_network(target, checkpoint)
    built, memory = measure_memory(target, device, dtype, checkpoint)
    spc = encoder = None
    if samples is not None:
        click_times, encoder_times = time_sam_clicks(built, samples(), device, max_clicks)
        spc = profile_clicks.summarize(click_times, dataset, warmup_clicks)
        encoder = summarize_encoder(encoder_times)
    del built
    return make_sam_row(profile, target, device, dtype, counts, memory, spc, encoder, checkpoint)


def make_sam_row(
    profile: Any,
    target: Any,
    device: torch.device,
    dtype: torch.dtype,
    counts: SamCounts,
    memory: profile_memory.PeakMemory | None,
    spc: profile_clicks.SpcSummary | None,
    encoder: EncoderSummary | None,
    checkpoint: Path | str | None = None,
):
    mega = profile_counts.MEGA
    encoder_params = counts.params.part("image_encoder") or 0
    decoder_params = sum(
        counts.params.part(m) or 0
        for m in ("prompt_encoder", "mask_decoder", "sam_prompt_encoder", "sam_mask_decoder")
    )
    row = profile.make_row(
        target,
        SAM_INPUT_SIZE,
        device,
        dtype,
        profile.Counts(
            counts.params,
            profile_counts.PaperCount(
                macs=counts.encoder_paper.macs + counts.decoder_paper.macs,
                params=counts.thop_params,
            ),
            counts.encoder_full + counts.decoder_full,
        ),
        memory,
        spc,
        checkpoint,
    )
    return dataclasses.replace(
        row,
        timing_split=TIMING_SPLIT,
        decoder_pass=DECODER_PASS,
        params_encoder_M=encoder_params / mega,
        params_decoder_M=decoder_params / mega,
        gflops_encoder_paper=counts.encoder_paper.gflops,
        gflops_decoder_paper=counts.decoder_paper.gflops,
        gflops_encoder_full=counts.encoder_full / 1e9,
        gflops_decoder_full=counts.decoder_full / 1e9,
        spc_encoder_median_s=None if encoder is None else encoder.encoder_median_s,
        spc_encoder_iqr_s=None if encoder is None else encoder.encoder_iqr_s,
        spc_start_median_s=None if encoder is None else encoder.start_median_s,
        spc_encoder_instances=None if encoder is None else encoder.instances,
    )
