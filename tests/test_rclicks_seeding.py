"""RClicks' seeding on images with several objects (TETRIS): one generator per image, the
objects taking turns on it, in every engine layout.

The reference is RClicks' own per-image loop, written here from the official structure
(emb-ai/rclicks `isegm/isegm/inference/evaluation.py`: `evaluate_functor` seeds once per
dataset index, then `evaluate_sample` clicks each of `sample.objects_ids` in turn;
`isegm/isegm/inference/clicker.py:Clicker._get_next_click`; `rclicks/rclicks/clicksim.py:
distance_transform_model`), run on the golden TETRIS tree (`golden/datasets/tetris_tree.tar.gz`,
RClicks' loader recorded in `loaders.json`) with the golden fake predictor.
"""

from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.clicks import make_click_model
from bench.datasets import get_dataset
from bench.engine.instance import ProtocolSettings
from bench.engine.loop import evaluate_dataset
from bench.engine.shards import Shard

PLUGINS = Path(__file__).parent / "plugins"
MAX_CLICKS = 20


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_seeding", PLUGINS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shifted_reveal = _load("shifted_reveal")


@pytest.fixture(scope="module")
def tetris(golden, tmp_path_factory) -> list:
    root = tmp_path_factory.mktemp("tetris")
    with tarfile.open(golden / "datasets" / "tetris_tree.tar.gz") as tar:
        tar.extractall(root, filter="data")
    refs = get_dataset("tetris").list_samples(root / "TETRIS")
    assert [len(ref.load()) for ref in refs] == [4, 4, 3]  # objects in ascending id order
    return refs


def _dt_model(error: np.ndarray) -> np.ndarray:
    """`distance_transform_model`: the unpadded L2 distance transform over its maximum."""
    dt = cv2.distanceTransform((error * 255).astype(np.uint8), cv2.DIST_L2, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float32(dt / dt.max())


def rclicks_image(samples, low: float, high: float, per_object_seed: bool = False):
    """RClicks' `evaluate_functor` on one image: `np.random.seed(42)` once, then each object's
    `evaluate_sample` (click-model branch, no early stop) with the clicker's rule. Returns
    {sample id: (clicks, number of random draws)}. `per_object_seed` reseeds per object
    instead (the behaviour this test must tell apart)."""
    rs = np.random.RandomState(42)  # the legacy global stream `np.random.choice` uses
    out = {}
    for sample in samples:
        if per_object_seed:
            rs = np.random.RandomState(42)
        gt_mask, not_ignore = sample.gt == 1, sample.gt != -1
        h, w = gt_mask.shape
        not_clicked = np.ones((h, w), dtype=bool)
        pred = np.zeros((h, w), dtype=bool)
        predictor = shifted_reveal.make_predictor()
        predictor.start(sample)
        clicks, draws = [], 0
        for _ in range(MAX_CLICKS):
            fn = gt_mask & ~pred & not_ignore
            fp = ~gt_mask & pred & not_ignore
            fn_dt, fp_dt = (
                cv2.distanceTransform(np.pad(m, 1).astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
                * not_clicked
                for m in (fn, fp)
            )
            positive = fn_dt.max() > fp_dt.max()
            error, dist = (fn, fn_dt) if positive else (fp, fp_dt)
            cmap = _dt_model(error) * error.astype(np.float32) * not_clicked
            ordered = np.sort(cmap.flatten())
            idx_low = ordered.cumsum().searchsorted(ordered.sum() * low, side="left")
            idx_high = ordered.cumsum().searchsorted(ordered.sum() * high, side="right")
            if idx_high == len(ordered):
                idx_high -= 1
            cmap = cmap * (cmap >= ordered[idx_low]) * (cmap <= ordered[idx_high])
            with np.errstate(invalid="ignore", divide="ignore"):
                probs = cmap / np.sum(cmap)
            if np.isnan(probs).any():  # the official click; no random number is used
                ys, xs = np.where(dist == dist.max())
                y, x = ys[0], xs[0]
            else:
                index = rs.choice(np.arange(probs.size), p=probs.flatten())
                y, x = np.unravel_index(index, probs.shape)
                draws += 1
            not_clicked[min(round(y), h - 1), min(round(x), w - 1)] = False
            clicks.append((int(y), int(x), bool(positive)))
            pred = predictor.predict(clicks) > 0.49
        out[sample.id] = (clicks, draws)
    return out


class Recording:
    """The golden fake predictor, batched, noting which instances share each call."""

    oracle = True

    def __init__(self) -> None:
        self.inner = shifted_reveal.make_predictor()
        self.calls: list[list[str]] = []

    def open_instance(self, sample):
        handle = self.inner.open_instance(sample)
        handle.sample_id = sample.id
        return handle

    def predict_batch(self, requests):
        self.calls.append([handle.sample_id for handle, _ in requests])
        return self.inner.predict_batch(requests)


def engine_clicks(refs, spec: str, batch_size: int, shards: int = 1, **layout):
    """{sample id: clicks} from the engine (all shards of it), and the predictor's calls."""
    settings = ProtocolSettings(max_clicks=MAX_CLICKS, click_model=spec)
    predictor, entries = Recording(), []
    for index in range(shards):
        items = Shard(index, shards).select(refs) if shards > 1 else list(enumerate(refs))
        evaluate_dataset(
            predictor,
            "TETRIS",
            items,
            settings,
            make_click_model(spec),
            entries.append,
            batch_size=batch_size,
            **layout,
        )
    assert all(not e.errors for e in entries)
    clicks = {i.sample_id: [tuple(c) for c in i.clicks] for e in entries for i in e.instances}
    return clicks, predictor.calls


SLICES = {"dt": (0.0, 1.0), "dt,group=1": (0.0, 0.1)}


@pytest.mark.parametrize("option", list(SLICES))
def test_objects_of_an_image_share_rclicks_per_image_stream(tetris, option):
    low, high = SLICES[option]
    want, restarted = {}, {}
    for ref in tetris:
        want.update(rclicks_image(ref.load(), low, high))
        restarted.update(rclicks_image(ref.load(), low, high, per_object_seed=True))
    # The test can tell the rules apart: reseeding per object changes later objects' clicks,
    # and objects draw fewer than MAX_CLICKS numbers (an empty slice draws none), so no fixed
    # per-object advance of the stream would do either.
    assert any(restarted[k][0] != want[k][0] for k in want)
    assert any(draws < MAX_CLICKS for _, draws in want.values())
    got, calls = engine_clicks(tetris, f"rclicks:prior={option}", batch_size=1)
    assert list(got) == list(want)
    for sample_id, (clicks, _) in want.items():
        assert got[sample_id] == clicks, sample_id
    assert all(len(call) == 1 for call in calls)


def test_batched_pipelined_and_sharded_runs_give_the_same_clicks(tetris):
    spec = "rclicks:prior=dt,group=1"
    base, _ = engine_clicks(tetris, spec, batch_size=1)
    batched, calls = engine_clicks(tetris, spec, batch_size=8)
    assert batched == base
    # Other images fill the batch, and one image never has two objects in flight.
    assert max(len(call) for call in calls) == len(tetris)
    assert all(len({sid.split("#")[0] for sid in call}) == len(call) for call in calls)
    piped, _ = engine_clicks(tetris, spec, 8, pipeline=True, harness_threads=3)
    assert piped == base
    sharded, _ = engine_clicks(tetris, spec, batch_size=3, shards=2)
    assert sharded == base
