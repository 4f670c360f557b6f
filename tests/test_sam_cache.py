"""Encode each image once (`bench.adapters.sam.cache`): trajectories through the real engine are
bit-identical with and without the cache at batch 1 and batch 8, the encoder runs once per image,
embeddings evicted while their instances are in flight stay valid, and the manifest's model
record says how `start_s` is charged.

The engine runs MobileSAM with random weights (its encoder is the cheapest of the family on
these CPUs) on a COCO-format multi-object set built from shared GrabCut images by
benchmarks/bench_embedding_cache.py (2 images with 3 and 2 objects). The cache sits in
`SamFamilyPredictor.open_instance`, the same for SAM, SAM 2, SAM-HQ and MobileSAM, and every
family's decoder already reuses one embedding for all clicks of an instance without changing it
(tests/test_sam_official.py, test_sam_hq.py, test_mobilesam.py compare clicks 2-5 with the
official predictors), so sharing it between instances cannot change a result either.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.adapters.sam.cache import EmbeddingCache, image_key
from bench.adapters.sam.predictor import _cache_size

ROOT = Path(__file__).resolve().parent.parent

if importlib.util.find_spec("segment_anything") is None:
    pytest.skip("segment-anything is not installed", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


@pytest.fixture(scope="module")
def bench_cache():
    spec = importlib.util.spec_from_file_location(
        "bench_embedding_cache", ROOT / "benchmarks" / "bench_embedding_cache.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# the cache itself ------------------------------------------------------------------------------
def test_key_is_the_pixel_content():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert image_key(image) == image_key(image.copy())
    assert image_key(image) == image_key(np.asfortranarray(image))
    changed = image.copy()
    changed[4, 6, 2] ^= 1
    assert image_key(changed) != image_key(image)
    assert image_key(image.reshape(7, 5, 3)) != image_key(image)


def test_least_recently_used_images_leave_and_counts_are_kept():
    cache: EmbeddingCache[str] = EmbeddingCache(max_images=2)
    images = [np.full((2, 2, 3), i, dtype=np.uint8) for i in range(3)]
    encoded: list[int] = []

    def encode(image: np.ndarray) -> str:
        encoded.append(int(image[0, 0, 0]))
        return f"embedding {int(image[0, 0, 0])}"

    assert cache.get_or_encode(images[0], encode) == "embedding 0"
    assert cache.get_or_encode(images[1], encode) == "embedding 1"
    assert cache.get_or_encode(images[0].copy(), encode) == "embedding 0"  # hit, now recent
    cache.get_or_encode(images[2], encode)  # evicts image 1, the least recently used
    assert len(cache) == 2
    cache.get_or_encode(images[0], encode)
    cache.get_or_encode(images[1], encode)
    assert encoded == [0, 1, 2, 1]
    assert (cache.stats.hits, cache.stats.misses, cache.stats.evictions) == (2, 4, 2)
    with pytest.raises(ValueError, match="at least 1 image"):
        EmbeddingCache(0)


def test_the_option_is_a_count_of_images():
    assert _cache_size("m", "0") == 0 and _cache_size("m", "false") == 0
    assert _cache_size("m", "true") == 4 and _cache_size("m", 16) == 16
    with pytest.raises(ValueError, match="embedding_cache='-1'"):
        _cache_size("m", "-1")


# through the engine ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def refs(bench_cache, data_root: Path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("coco")
    path = bench_cache.build_coco_fixture(data_root, 2, folder / "instances.json")
    found = bench_cache.read_coco(path)
    assert [len(ref.load()) for ref in found] == [3, 2]
    return found


@pytest.fixture(scope="module")
def network():
    from bench.adapters.sam import official
    from bench.adapters.sam.models import VARIANTS

    torch.manual_seed(0)
    return official.build_network(VARIANTS["mobilesam"])


def _run(bench_cache, network, refs, embedding_cache: int, batch_size: int):
    from bench.adapters.sam.models import VARIANTS
    from bench.adapters.sam.predictor import predictor_for_network

    predictor = predictor_for_network(
        VARIANTS["mobilesam"], network, embedding_cache=embedding_cache
    )
    counter = bench_cache.CountingEncoder(predictor.backend)
    records = bench_cache.evaluate(predictor, refs, max_clicks=3, batch_size=batch_size)
    return bench_cache.trajectories(records), counter.calls, predictor


@pytest.mark.slow
def test_trajectories_are_bit_identical_with_and_without_the_cache(bench_cache, network, refs):
    """Reference: no cache at batch 1 (one encoder pass per instance, the official loop).
    Cached at batch 1, and at batch 8 with room for one image only, so that the first image's
    embedding leaves the cache while its instances are still in flight."""
    reference, encodes, plain = _run(bench_cache, network, refs, 0, 1)
    assert encodes == 5 and len(reference) == 5
    assert plain.describe()["embedding_cache"]["enabled"] is False
    for cache_size, batch in ((4, 1), (1, 8)):
        cached, encodes, predictor = _run(bench_cache, network, refs, cache_size, batch)
        assert encodes == 2, (cache_size, batch)  # once per image
        assert cached == reference, (cache_size, batch)  # clicks and float32 IoUs, exactly
    described = predictor.describe()["embedding_cache"]
    assert described["enabled"] is True and described["max_images"] == 1
    assert "charged once per image" in described["start_s"]
    assert predictor.cache.stats.evictions == 1
