"""HQSeg-44K, DAVIS-585 and TETRIS read exactly as their official loaders read them.

`golden/datasets/loaders.json` holds what SegNext's, ClickSEG's and RClicks' loaders yield on
the synthetic trees beside it: order, ids, shapes, image checksums, mask values after each
rule and the initial masks. DAVIS-585's official order is `os.listdir` (filesystem order), so
it is compared with our sorted order by mask path, as the fixture's README says.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bench.datasets import get_dataset
from bench.sample import SampleError


@pytest.fixture(scope="module")
def loaders(golden) -> dict:
    return json.loads((golden / "datasets" / "loaders.json").read_text())


@pytest.fixture(scope="module")
def trees(golden, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trees")
    for name in ("hqseg44k", "davis585", "tetris"):
        with tarfile.open(golden / "datasets" / f"{name}_tree.tar.gz") as tar:
            tar.extractall(root, filter="data")
    return root


def _summary(mask: np.ndarray) -> tuple[list, list]:
    values, counts = np.unique(mask, return_counts=True)
    return values.tolist(), counts.tolist()


def _assert_mask(mask: np.ndarray, expected: dict) -> None:
    assert list(mask.shape) == expected["shape"]
    assert _summary(mask) == (expected["unique"], expected["counts"])


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ("hqseg44k", "gt_mask_after_loader_rule"),
        ("hqseg44k,rule=hqsam", "hqsam_rule_R_channel_gt128"),
    ],
)
def test_hqseg44k_matches_segnext_loader(trees, loaders, spec, key):
    reference = loaders["hqseg44k"]
    dataset = get_dataset(spec)
    refs = dataset.list_samples(trees / "HQSeg44K")
    assert len(refs) == reference["len"]  # only .jpg images; the orphan mask is not listed
    assert [r.id for r in refs] == [f"{s['subset']}/{s['sample'][0]}" for s in reference["samples"]]
    for ref, expected in zip(refs, reference["samples"]):
        if 1 not in expected[key]["unique"]:  # COIFT b_2 under HQ-SAM's rule: no object
            with pytest.raises(SampleError, match="no object pixels"):
                ref.load()
            continue
        (sample,) = ref.load()
        assert list(sample.image.shape) == expected["image_shape"]
        assert int(sample.image.sum(dtype=np.int64)) == expected["image_sum"]
        _assert_mask(sample.gt, expected[key])
    assert dataset.manifest["rule"].startswith(spec.partition("rule=")[2] or "segnext")


def test_hqseg44k_subsets_by_name(trees):
    for name, count in (
        ("DIS5K-VD", 470),
        ("coift", 280),
        ("HRSOD", 287),
        ("thinobject5k-te", 500),
    ):
        spec = get_dataset(name)
        assert spec.expected_instances == count
        refs = spec.list_samples(trees / "HQSeg44K")
        assert [r.id.split("/")[0].lower() for r in refs] == [name.lower()] * 2
    assert get_dataset("hqseg44k").expected_instances == 1537


@pytest.mark.parametrize("mode", ["zero", "sp", "stm"])
def test_davis585_matches_clickseg_loader(trees, loaders, mode):
    reference = loaders["davis585"]["modes"][mode]
    spec = get_dataset("davis585" if mode == "zero" else f"davis585,mode={mode}")
    refs = spec.list_samples(trees / "DAVIS585")
    expected = sorted(reference["samples"], key=lambda s: s["mask_path"])
    assert [r.id for r in refs] == [s["mask_path"].removesuffix(".png") for s in expected]
    for ref, inst in zip(refs, expected):
        (sample,) = ref.load()
        assert sample.dataset == reference["name"]
        assert sample.image_path.relative_to(trees / "DAVIS585").as_posix() == inst["paths"][0]
        assert list(sample.image.shape) == inst["image_shape"]
        assert int(sample.image.sum(dtype=np.int64)) == inst["image_sum"]
        _assert_mask(sample.gt, inst["gt_mask_after_loader_rule"])
        if inst["init_mask"] is None:
            assert sample.init_mask is None
        else:
            assert sample.init_mask.dtype == bool
            _assert_mask(sample.init_mask, inst["init_mask"])
    assert spec.manifest["mode"] == mode and spec.manifest["listing"].startswith("sorted")


def test_davis585_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="mode='none'; use one of zero, sp, stm"):
        get_dataset("davis585,mode=none")


@pytest.mark.parametrize(
    ("run", "spec"), [("max_side_size_2048", "tetris"), ("max_side_size_16", "tetris,max_side=16")]
)
def test_tetris_matches_rclicks_loader(trees, loaders, run, spec):
    reference = loaders["tetris"]["runs"][run]
    refs = get_dataset(spec).list_samples(trees / "TETRIS")
    assert len(refs) == reference["len"]
    for ref, expected in zip(refs, reference["samples"]):
        samples = ref.load()
        assert ref.files[0].name == expected["image_name"]
        assert [int(s.id.split("#")[1]) for s in samples] == expected["instance_ids"]
        for sample, obj in zip(samples, expected["objects"], strict=True):
            assert list(sample.image.shape) == expected["image_shape"]
            assert int(sample.image.sum(dtype=np.int64)) == expected["image_sum"]
            _assert_mask(sample.gt, obj["mask"])


def test_tetris_first_n_split(trees):
    spec = get_dataset("tetris,n_samples=2")
    assert spec.name == "tetris_first2" and spec.manifest["n_samples"] == 2
    assert [r.id for r in spec.list_samples(trees / "TETRIS")] == ["img_001", "img_002"]
    with pytest.raises(ValueError, match="takes no options"):
        get_dataset("grabcut,mode=sp")


PROBE = Path(__file__).parent / "plugins" / "init_mask_probe.py"


@pytest.mark.parametrize("mode", ["zero", "sp"])
def test_davis585_run_starts_from_the_initial_mask(trees, tmp_path, mode):
    """ClickSEG `evaluation.py`: the first click corrects the initial mask's errors, and the
    predictor receives the mask (here it predicts it back, so every IoU is the mask's)."""
    from click.testing import CliRunner

    from bench import protocol
    from bench.cli import main
    from bench.store import read_trajectories

    spec = "davis585" if mode == "zero" else f"davis585,mode={mode}"
    out = tmp_path / "run"
    args = ["run", "--model", f"{PROBE}:make_predictor", "--datasets", spec]
    args += ["--data-root", str(trees), "--out", str(out), "--no-progress", "--max-clicks", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    frame = read_trajectories(out)
    refs = get_dataset(spec).list_samples(trees / "DAVIS585")
    assert list(dict.fromkeys(frame["sample_id"])) == [r.id for r in refs]
    for ref in refs:
        (sample,) = ref.load()
        rows = frame[frame["sample_id"] == sample.id]
        target = protocol.Target.from_gt(sample.gt)
        start = np.zeros(sample.gt.shape, bool) if sample.init_mask is None else sample.init_mask
        err = protocol.errors(target, start)
        first = protocol.next_click_from_errors(err, [])
        assert (rows["y"].iloc[0], rows["x"].iloc[0], rows["positive"].iloc[0]) == tuple(first)
        expected = np.float32(protocol.iou_from_errors(target, err))
        np.testing.assert_array_equal(rows["iou"].to_numpy(), [expected, expected])
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["datasets"][get_dataset(spec).name]
    assert record["mode"] == mode and record["listing"].startswith("sorted")


def test_eval_predictor_gets_the_initial_mask_as_previous_mask():
    torch = pytest.importorskip("torch")
    from bench.adapters.common.eval_predictor import PipelineConfig, prepare_inputs, start_instance
    from bench.sample import Click

    image = np.zeros((6, 5, 3), np.uint8)
    init = np.zeros((6, 5), bool)
    init[1:4, 2:] = True
    state = start_instance(image, "cpu", init)
    net_input = prepare_inputs(PipelineConfig(None, with_flip=False), state, [Click(2, 2, True)])
    assert torch.equal(net_input.x[0, 3], torch.from_numpy(init.astype(np.float32)))
    assert not start_instance(image, "cpu").prev_prob.any()


def test_hqseg44k_verify_names_the_files_the_official_listing_skips(trees):
    from bench.datasets.verify import verify_dataset

    report = verify_dataset(get_dataset("dis5k-vd"), trees)
    assert (report.images, report.instances) == (2, 2)
    warned = {Path(w.path).name: w.problem for w in report.warnings}
    assert warned == {
        "c_ignored.png": "not listed (the official loader reads *.jpg)",
        "z_orphan.png": "mask without an image (never evaluated)",
    }
