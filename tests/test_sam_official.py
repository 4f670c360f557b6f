"""The SAM adapters against the official predictors: `segment_anything.SamPredictor` and
`sam2.sam2_image_predictor.SAM2ImagePredictor`, same prompts, bit-identical on CPU float32.

Networks come from each package's own builder with random weights (no weights can be
downloaded here; their cost is that of the real ones), clicks from the official click rule on
real GrabCut images. Fast tests check what the encoder sees (aborting the encoder once its input
is captured) and five clicks of decoding from a shared embedding; the slow tests run end to end
from a checkpoint file in the official format (segment-anything's ViT pass run once, by us, and
replayed to its predictor after the input is compared).

The official predictor modules import torchvision (`bench.adapters.sam.official`). Where it does
not import, `official_predictors` lends them a stand-in with exactly the four names they import,
written from torchvision's source (named per class below); the adapter itself never sees it. The
stand-in makes the comparison circular for those transforms only, so
`test_transforms_equal_torchvision` compares them with torchvision itself wherever it imports
(verified here once with torchvision 0.28.0's own Python code: bit-identical on 50 GrabCut and
20 DAVIS images; see the SAM section of the README).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bench.adapters import make_predictor, resolve_model
from bench.adapters.sam import official
from bench.adapters.sam.backends import Embedding
from bench.adapters.sam.models import SAM_PACKAGE, VARIANTS
from bench.adapters.sam.predictor import PromptProtocol, SamInstance, predictor_for_network
from bench.adapters.sam.transforms import sam2_input_tensor, sam_preprocess_shape
from bench.adapters.sam.transforms import sam_resized_image as sam_resized
from bench.datasets import list_samples
from bench.protocol import next_click
from bench.sample import Click, Sample

if importlib.util.find_spec("segment_anything") is None or importlib.util.find_spec("sam2") is None:
    pytest.skip(
        "the official packages are not installed (README, SAM-family models)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

SMALLEST = ("sam-vit-b", "sam2-hiera-t")
GRABCUT_INDICES = (0, 4, 25)  # 321 x 481, 481 x 321 and 600 x 450 images


# torchvision stand-in (only where torchvision does not import) --------------------------------
class _StandInResize(torch.nn.Module):
    """`torchvision.transforms.Resize(size)` on a float tensor: transforms.py `Resize.forward` ->
    functional.py `resize` (unchanged when the size matches) -> _functional_tensor.py `resize`
    (batch of one, bilinear, align_corners=False, antialias=True by default since 0.17)."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = [int(size[0]), int(size[1])]

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if [img.shape[-2], img.shape[-1]] == self.size:
            return img
        squeeze = img.dim() < 4
        if squeeze:
            img = img.unsqueeze(0)
        img = F.interpolate(
            img, size=self.size, mode="bilinear", align_corners=False, antialias=True
        )
        if squeeze:
            img = img.squeeze(0)
        return img


class _StandInNormalize(torch.nn.Module):
    """`torchvision.transforms.Normalize(mean, std)`: _functional_tensor.py `normalize` (a copy,
    then `sub_(mean).div_(std)` with per-channel tensors of the input's dtype)."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def forward(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        mean = torch.tensor(self.mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        return tensor.sub_(mean).div_(std)


class _StandInToTensor:
    """`torchvision.transforms.ToTensor` of an H x W x C uint8 array: functional.py `to_tensor`
    (HWC -> CHW, contiguous, to the default float dtype, / 255)."""

    def __call__(self, pic: np.ndarray) -> torch.Tensor:
        img = torch.from_numpy(pic.transpose((2, 0, 1))).contiguous()
        return img.to(dtype=torch.get_default_dtype()).div(255)


def _stand_in_resize(img: Image.Image, size: list[int]) -> Image.Image:
    """functional.py `resize` of a PIL image: unchanged when the size matches, else
    _functional_pil.py `resize`: `img.resize((w, h), BILINEAR)`."""
    if [img.height, img.width] == list(size):
        return img
    return img.resize((size[1], size[0]), Image.BILINEAR)


def _stand_in_to_pil_image(pic: np.ndarray) -> Image.Image:
    """functional.py `to_pil_image` of an H x W x 3 uint8 array: `Image.fromarray(pic, "RGB")`."""
    assert pic.ndim == 3 and pic.shape[2] == 3 and pic.dtype == np.uint8
    return Image.fromarray(pic, "RGB")


def _stand_in_modules() -> dict[str, ModuleType]:
    root, transforms, functional = (
        ModuleType("torchvision"),
        ModuleType("torchvision.transforms"),
        ModuleType("torchvision.transforms.functional"),
    )
    root.__path__, transforms.__path__ = [], []
    functional.resize, functional.to_pil_image = _stand_in_resize, _stand_in_to_pil_image
    transforms.Resize, transforms.Normalize = _StandInResize, _StandInNormalize
    transforms.ToTensor, transforms.functional = _StandInToTensor, functional
    root.transforms = transforms
    return {m.__name__: m for m in (root, transforms, functional)}


_PREDICTOR_MODULES = (
    "segment_anything.predictor",
    "segment_anything.utils.transforms",
    "sam2.sam2_image_predictor",
    "sam2.utils.transforms",
)


@pytest.fixture(scope="module")
def official_predictors():
    """(SamPredictor, SAM2ImagePredictor), with torchvision or its stand-in."""
    official.segment_anything_builders()
    if official.torchvision_import_error() is None:
        from sam2.sam2_image_predictor import SAM2ImagePredictor
        from segment_anything.predictor import SamPredictor

        return SamPredictor, SAM2ImagePredictor
    stand_ins = _stand_in_modules()
    saved = {k: sys.modules[k] for k in stand_ins if k in sys.modules}
    sys.modules.update(stand_ins)
    try:
        from sam2.sam2_image_predictor import SAM2ImagePredictor
        from segment_anything.predictor import SamPredictor
    finally:  # the classes keep what they imported; the process forgets the stand-in
        for name in (*stand_ins, *_PREDICTOR_MODULES):
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    return SamPredictor, SAM2ImagePredictor


# fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared CPU, OpenMP stalls make two threads many times slower
    (bench.profile.clicks); results are the same for both predictors either way."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def samples(data_root: Path) -> list[Sample]:
    refs = list_samples("grabcut", data_root)
    return [refs[i].load()[0] for i in GRABCUT_INDICES]


@pytest.fixture(scope="module")
def networks() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {name: official.build_network(VARIANTS[name]) for name in SMALLEST}


def _official_predictor(official_predictors, name: str, network):
    sam_predictor, sam2_predictor = official_predictors
    return (
        sam_predictor(network) if VARIANTS[name].package == SAM_PACKAGE else sam2_predictor(network)
    )


class _Captured(Exception):
    pass


def _encoder_input(network, encode) -> torch.Tensor:
    """The tensor `encode()` hands the image encoder; the encoder itself never runs."""
    seen = []

    def capture(module, args):
        seen.append(args[0].detach().clone())
        raise _Captured

    handle = network.image_encoder.register_forward_pre_hook(capture)
    try:
        with pytest.raises(_Captured):
            encode()
    finally:
        handle.remove()
    return seen[0]


# tests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SMALLEST)
def test_encoder_input_is_the_official_predictors(official_predictors, networks, samples, name):
    network = networks[name]
    ours = predictor_for_network(VARIANTS[name], network)
    theirs = _official_predictor(official_predictors, name, network)
    for sample in samples:
        mine = _encoder_input(network, lambda s=sample: ours.open_instance(s))
        ref = _encoder_input(network, lambda s=sample: theirs.set_image(s.image))
        assert mine.shape == ref.shape == (1, 3, 1024, 1024)
        assert mine.dtype == ref.dtype == torch.float32
        assert torch.equal(mine, ref), sample.id


def _random_embedding(name: str, sample: Sample, seed: int) -> tuple[Embedding, dict]:
    """A random image embedding in both predictors' formats (values never matter here)."""
    g = torch.Generator().manual_seed(seed)
    size = tuple(sample.image.shape[:2])
    embed = torch.randn(1, 256, 64, 64, generator=g)
    if VARIANTS[name].package == SAM_PACKAGE:
        input_size = sam_preprocess_shape(*size, 1024)
        official_state = {
            "features": embed,
            "original_size": size,
            "input_size": input_size,
            "is_image_set": True,
        }
        return Embedding(size, embed, input_size=input_size), official_state
    high_res = (
        torch.randn(1, 32, 256, 256, generator=g),
        torch.randn(1, 64, 128, 128, generator=g),
    )
    official_state = {
        "_features": {"image_embed": embed, "high_res_feats": list(high_res)},
        "_orig_hw": [size],
        "_is_image_set": True,
    }
    return Embedding(size, embed, high_res=high_res), official_state


def _official_click(theirs, clicks: list[Click], mask_input, multimask: bool):
    points = np.array([[c.x, c.y] for c in clicks])
    labels = np.array([int(c.positive) for c in clicks])
    return theirs.predict(
        points, labels, mask_input=mask_input, multimask_output=multimask, return_logits=True
    )


def _compare_five_clicks(ours, theirs, handle: SamInstance, sample: Sample, multimask_rule: str):
    clicks: list[Click] = []
    prediction = np.zeros(sample.gt.shape, dtype=bool)
    low = None
    indices = []
    for k in range(1, 6):
        clicks.append(next_click(sample.gt, prediction, [(c.y, c.x) for c in clicks]))
        out = ours.predict_details([(handle, list(clicks))])[0]
        multimask = multimask_rule == "always" or k == 1
        logits, scores, lows = _official_click(theirs, clicks, low, multimask)
        index = int(np.argmax(scores)) if multimask else 0
        indices.append(index)
        assert out.index == index
        assert len(out.iou) == (3 if multimask else 1)
        assert np.array_equal(out.iou, scores)
        assert np.array_equal(out.logits, logits[index]), (sample.id, k)
        assert np.array_equal(out.low_res, lows[index])
        expected = torch.sigmoid(torch.from_numpy(logits[index])).numpy()
        assert np.array_equal(out.probability, expected)
        low = lows[[index]]
        prediction = out.probability > 0.49
    return indices


@pytest.mark.parametrize(
    ("name", "multimask", "images"),
    [("sam-vit-b", "first", 2), ("sam2-hiera-t", "first", 2), ("sam2-hiera-t", "always", 1)],
)
def test_five_clicks_decode_like_the_official_predictor(
    official_predictors, networks, samples, name, multimask, images
):
    network = networks[name]
    ours = predictor_for_network(
        VARIANTS[name], network, protocol=PromptProtocol(multimask=multimask)
    )
    for seed, sample in enumerate(samples[:images]):
        embedding, official_state = _random_embedding(name, sample, seed)
        theirs = _official_predictor(official_predictors, name, network)
        for attribute, value in official_state.items():
            setattr(theirs, attribute, value)  # what set_image would leave behind
        _compare_five_clicks(ours, theirs, SamInstance(sample.id, embedding), sample, multimask)


def _save_official_checkpoint(name: str, network, path: Path) -> Path:
    state = network.state_dict()
    torch.save(state if VARIANTS[name].package == SAM_PACKAGE else {"model": state}, path)
    return path


def _official_network_from_file(name: str, path: Path):
    """The package's own loading path: `sam_model_registry[...](checkpoint=...)` /
    `build_sam2(config, ckpt_path)`."""
    variant = VARIANTS[name]
    builders = official.ensure_package(variant)
    if variant.package == SAM_PACKAGE:
        return builders.sam_model_registry[variant.builder_key](checkpoint=str(path)).eval()
    return builders.build_sam2(variant.builder_key, str(path), device="cpu")


@pytest.fixture
def two_threads():
    """The end-to-end encoder passes on both cores (CI's machine is not shared)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sam-vit-b", "sam2-hiera-t"])
def test_end_to_end_from_an_official_checkpoint_file(
    official_predictors, networks, samples, tmp_path, two_threads, name
):
    path = _save_official_checkpoint(name, networks[name], tmp_path / f"{name}.pth")
    ours = make_predictor(resolve_model(name), checkpoint=str(path), device="cpu")
    official_network = _official_network_from_file(name, path)
    theirs = _official_predictor(official_predictors, name, official_network)
    mine, official_state = ours.model.state_dict(), official_network.state_dict()
    assert mine.keys() == official_state.keys()
    assert all(torch.equal(mine[key], official_state[key]) for key in mine)
    sample = samples[0]
    if VARIANTS[name].package == SAM_PACKAGE:
        encoded = _run_capturing_the_encoder(lambda: ours.start(sample))
        with _encoder_replayed(official_network.image_encoder, *encoded):
            theirs.set_image(sample.image)
    else:
        ours.start(sample)
        theirs.set_image(sample.image)
    _compare_five_clicks(ours, theirs, ours._current, sample, "first")


def _run_capturing_the_encoder(call) -> tuple[torch.Tensor, torch.Tensor]:
    """The input and output of the one SAM image encoder pass that `call` makes."""
    from segment_anything.modeling.image_encoder import ImageEncoderViT

    seen = []

    def capture(module, args, output):
        if isinstance(module, ImageEncoderViT):
            seen.append((args[0].detach().clone(), output.detach().clone()))

    handle = torch.nn.modules.module.register_module_forward_hook(capture)
    try:
        call()
    finally:
        handle.remove()
    assert len(seen) == 1
    return seen[0]


@contextlib.contextmanager
def _encoder_replayed(encoder, expected_input: torch.Tensor, output: torch.Tensor):
    """The official predictor's ViT pass (ViT-B: 44 s on one CPU thread) replaced by ours once
    its input is checked bit for bit: both run the package's own ImageEncoderViT class with the
    same weights (state dicts compared above), so only the input can differ."""

    def replay(x: torch.Tensor) -> torch.Tensor:
        assert torch.equal(x, expected_input)
        return output.clone()

    encoder.forward = replay
    try:
        yield
    finally:
        del encoder.forward


def test_transforms_equal_torchvision(samples):
    if official.torchvision_import_error() is not None:
        pytest.skip(f"torchvision does not import here ({official.torchvision_import_error()})")
    from sam2.utils.transforms import SAM2Transforms
    from segment_anything.utils.transforms import ResizeLongestSide

    resize, sam2_transforms = ResizeLongestSide(1024), SAM2Transforms(1024, 0.0)
    for sample in samples:
        assert np.array_equal(sam_resized(sample.image, 1024), resize.apply_image(sample.image))
        assert torch.equal(sam2_input_tensor(sample.image, 1024), sam2_transforms(sample.image))
