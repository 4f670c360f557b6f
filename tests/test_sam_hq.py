"""SAM-HQ (`sam-hq-vit-b/l/h`) against the official `segment-anything-hq` package: the network
equals its own builder's, the encoder sees what its `SamPredictor.set_image` gives the encoder,
and five clicks decode bit-identically to its `SamPredictor.predict` on CPU float32 (both
`hq_token_only` settings); strict loading names every key a plain SAM checkpoint lacks.

The official predictor and builder import torchvision (`utils/transforms.py`) and timm
(`modeling/tiny_vit_sam.py`, through `modeling/__init__.py`), neither installed here; the
`official_hq` fixture imports them with stand-ins for the names they use (torchvision's as in
tests/test_sam_official.py; timm's `DropPath`, `to_2tuple`, `trunc_normal_`, `register_model`
only feed TinyViT, which the ViT variants never build) and then forgets the stand-ins and
those official modules, so the adapter never sees them. The image encoder is the package's own
module called on the same tensor in both, so its cost (80 s for ViT-B on these shared CPUs) is
not paid here: the decoder runs on a random embedding and random intermediate ViT features set
on both predictors.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from bench.adapters import make_predictor, resolve_model
from bench.adapters.checkpoint import CheckpointError
from bench.adapters.sam import official
from bench.adapters.sam.backends import Embedding
from bench.adapters.sam.checkpoint import identify
from bench.adapters.sam.models import VARIANTS
from bench.adapters.sam.predictor import PromptProtocol, SamInstance, predictor_for_network
from bench.adapters.sam.transforms import sam_preprocess_shape
from bench.datasets import list_samples
from bench.protocol import next_click
from bench.sample import Click, Sample

if (
    importlib.util.find_spec("segment_anything_hq") is None
    or importlib.util.find_spec("segment_anything") is None
):
    pytest.skip(
        'segment-anything-hq is not installed (pip install --no-deps "segment-anything-hq>=0.3")',
        allow_module_level=True,
    )

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

HQ_NAMES = ("sam-hq-vit-b", "sam-hq-vit-l", "sam-hq-vit-h")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _stand_ins() -> dict[str, ModuleType]:
    """torchvision's `resize` / `to_pil_image` (PIL path, as tests/test_sam_official.py) and
    timm's four names, only where the real module does not import."""
    modules: dict[str, ModuleType] = {}
    if official.torchvision_import_error() is not None:
        root, transforms, functional = (
            ModuleType("torchvision"),
            ModuleType("torchvision.transforms"),
            ModuleType("torchvision.transforms.functional"),
        )
        root.__path__, transforms.__path__ = [], []

        def resize(img: Image.Image, size: list[int]) -> Image.Image:
            if [img.height, img.width] == list(size):
                return img
            return img.resize((size[1], size[0]), Image.BILINEAR)

        functional.resize = resize
        functional.to_pil_image = lambda pic: Image.fromarray(pic, "RGB")
        ops, boxes = ModuleType("torchvision.ops"), ModuleType("torchvision.ops.boxes")
        ops.__path__ = []
        boxes.batched_nms = boxes.box_area = None  # automatic mask generator only
        modules.update({m.__name__: m for m in (root, transforms, functional, ops, boxes)})
    try:
        importlib.import_module("timm.models.layers")
    except Exception:  # noqa: BLE001 - absent, or broken by its torchvision import
        timm, models, layers, registry = (
            ModuleType("timm"),
            ModuleType("timm.models"),
            ModuleType("timm.models.layers"),
            ModuleType("timm.models.registry"),
        )
        timm.__path__, models.__path__ = [], []

        class DropPath(torch.nn.Identity):  # drop_prob 0 in eval: identity
            def __init__(self, drop_prob=None):
                super().__init__()

        layers.DropPath = DropPath
        layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
        layers.trunc_normal_ = torch.nn.init.trunc_normal_
        registry.register_model = lambda fn: fn
        modules.update({m.__name__: m for m in (timm, models, layers, registry)})
    return modules


@pytest.fixture(scope="module")
def official_hq():
    """(SamPredictor, sam_model_registry) of segment-anything-hq, its `__init__` run."""
    official.sam_hq_modeling()  # the adapter's bare import first, restored afterwards
    ours = {k: m for k, m in sys.modules.items() if k.split(".")[0] == "segment_anything_hq"}
    stand_ins = _stand_ins()
    for name in ours:
        del sys.modules[name]
    sys.modules.update(stand_ins)
    try:
        package = importlib.import_module("segment_anything_hq")
        found = package.SamPredictor, package.sam_model_registry
    finally:
        for name in [k for k in sys.modules if k.split(".")[0] == "segment_anything_hq"]:
            del sys.modules[name]
        for name in stand_ins:
            sys.modules.pop(name, None)
        sys.modules.update(ours)
    return found


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return official.build_network(VARIANTS["sam-hq-vit-b"])


@pytest.fixture(scope="module")
def samples(data_root: Path) -> list[Sample]:
    refs = list_samples("grabcut", data_root)
    return [refs[i].load()[0] for i in (0, 4)]


def _shapes(network: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in network.state_dict().items()]


@pytest.mark.parametrize("name", HQ_NAMES)
def test_network_is_the_official_builders(official_hq, name):
    _, registry = official_hq
    with torch.device("meta"):
        theirs = registry[VARIANTS[name].builder_key](checkpoint=None)
        ours = official.construct(VARIANTS[name])
    assert _shapes(ours) == _shapes(theirs)
    assert repr(ours) == repr(theirs)
    total = sum(p.numel() for p in ours.parameters())
    assert round(total / 1e6, 2) == VARIANTS[name].params_m == resolve_model(name).params_m
    assert identify({k: torch.empty(s, device="meta") for k, s in _shapes(ours)}) == name


class _Captured(Exception):
    pass


def _encoder_input(network, encode) -> torch.Tensor:
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


def test_encoder_input_is_the_official_predictors(official_hq, network, samples):
    predictor_class, _ = official_hq
    ours = predictor_for_network(VARIANTS["sam-hq-vit-b"], network, embedding_cache=0)
    theirs = predictor_class(network)
    for sample in samples:
        mine = _encoder_input(network, lambda s=sample: ours.open_instance(s))
        ref = _encoder_input(network, lambda s=sample: theirs.set_image(s.image))
        assert mine.shape == ref.shape == (1, 3, 1024, 1024)
        assert torch.equal(mine, ref), sample.id


def _five_clicks(ours, theirs, handle, sample: Sample, hq_token_only: bool) -> None:
    clicks: list[Click] = []
    prediction = np.zeros(sample.gt.shape, dtype=bool)
    low = None
    for k in range(1, 6):
        clicks.append(next_click(sample.gt, prediction, [(c.y, c.x) for c in clicks]))
        out = ours.predict_details([(handle, list(clicks))])[0]
        logits, scores, lows = theirs.predict(
            np.array([[c.x, c.y] for c in clicks]),
            np.array([int(c.positive) for c in clicks]),
            mask_input=low,
            multimask_output=k == 1,
            return_logits=True,
            hq_token_only=hq_token_only,
        )
        # MaskDecoderHQ returns one mask even with multimask output (it keeps the best of the
        # three SAM masks itself), so the chosen index is always 0.
        assert out.index == 0 and len(out.iou) == len(scores) == 1
        assert np.array_equal(out.iou, scores)
        assert np.array_equal(out.logits, logits[0]), (sample.id, k)
        assert np.array_equal(out.low_res, lows[0])
        low = lows[[0]]
        prediction = out.probability > 0.49


@pytest.mark.parametrize(("hq_token_only", "images"), [(False, 2), (True, 1)])
def test_five_clicks_decode_like_the_official_predictor(
    official_hq, network, samples, hq_token_only, images
):
    predictor_class, _ = official_hq
    ours = predictor_for_network(
        VARIANTS["sam-hq-vit-b"], network, protocol=PromptProtocol(), hq_token_only=hq_token_only
    )
    assert ours.describe()["hq_token_only"] is hq_token_only
    for seed, sample in enumerate(samples[:images]):
        g = torch.Generator().manual_seed(seed)
        embed = torch.randn(1, 256, 64, 64, generator=g)
        interm = [torch.randn(1, 64, 64, 768, generator=g) for _ in range(4)]
        size = tuple(sample.image.shape[:2])
        input_size = sam_preprocess_shape(*size, 1024)
        theirs = predictor_class(network)
        theirs.features, theirs.interm_features = embed, interm  # what set_image leaves
        theirs.original_size, theirs.input_size, theirs.is_image_set = size, input_size, True
        embedding = Embedding(size, embed, input_size=input_size, interm=(interm[0],))
        _five_clicks(ours, theirs, SamInstance(sample.id, embedding), sample, hq_token_only)


def _zeros_like_network(name: str) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        network = official.construct(VARIANTS[name])
    return {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in network.state_dict().items()}


def test_a_plain_sam_checkpoint_is_refused_naming_every_hq_key(tmp_path):
    hq = _zeros_like_network("sam-hq-vit-b")
    builders = official.segment_anything_builders()
    with torch.device("meta"):
        sam = builders.sam_model_registry["vit_b"](checkpoint=None)
    state = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in sam.state_dict().items()}
    path = tmp_path / "sam_vit_b.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        make_predictor(resolve_model("sam-hq-vit-b"), checkpoint=str(path))
    message = str(error.value)
    hq_only = [k for k in hq if k not in state]
    assert len(hq_only) > 5 and all(k.startswith("mask_decoder.") for k in hq_only)
    assert f"{len(hq_only)} missing key(s): {', '.join(hq_only)}" in message
    assert "plain SAM checkpoint" in message
    # ... and an HQ file for plain SAM names the model to use.
    torch.save(hq, path)
    with pytest.raises(CheckpointError, match="use --model sam-hq-vit-b"):
        make_predictor(resolve_model("sam-vit-b"), checkpoint=str(path))


def test_options_apply_to_their_family_only():
    with pytest.raises(TypeError, match="hq_token_only applies to SAM-HQ models only"):
        make_predictor(resolve_model("sam-vit-b"), checkpoint="x.pth", hq_token_only=True)
    with pytest.raises(TypeError, match="batch_decoder applies to SAM 2 models only"):
        make_predictor(resolve_model("sam-hq-vit-b"), checkpoint="x.pth", batch_decoder=True)
