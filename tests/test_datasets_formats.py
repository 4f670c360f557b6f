"""Each dataset format on a small fixture built in its official layout and file types.

Expected instance counts, orders and masks are derived by hand from the pixels written
here and the official decoding rules (PROTOCOL.md section 8).
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import scipy.sparse
from click.testing import CliRunner
from PIL import Image

from bench.cli.datasets import datasets as datasets_cli
from bench.datasets import DATASETS, get_dataset, list_samples
from bench.datasets.pascalvoc import voc_palette
from bench.datasets.verify import verify_dataset
from bench.sample import SampleError


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array), path
    return path


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _load_all(name: str, root: Path):
    return [s for ref in list_samples(name, root) for s in ref.load()]


# --- GrabCut / Berkeley: channel 0, 128 = ignore, > 128 = object, raw 1 = object ---------


@pytest.fixture
def grabcut_root(tmp_path: Path) -> Path:
    base = tmp_path / "GrabCut"
    # Code-point order puts upper case first: "B.png" < "a.b.bmp" < "c.png".
    _write(base / "data_GT" / "c.png", _image(4, 6, 1))
    _write(base / "data_GT" / "B.png", _image(3, 5, 2))
    _write(base / "data_GT" / "a.b.bmp", _image(2, 3, 3))
    # One row of every interesting raw value; channel 0 (blue) is what counts.
    mask_c = np.zeros((4, 6, 3), np.uint8)
    mask_c[0, :, 0] = [0, 1, 64, 128, 129, 255]
    mask_c[1, :, 2] = 255  # red only: channel 0 stays 0 -> background
    _write(base / "boundary_GT" / "c.bmp", mask_c)
    _write(base / "boundary_GT" / "B.bmp", np.full((3, 5, 3), 255, np.uint8))
    _write(base / "boundary_GT" / "a.bmp", np.full((2, 3, 3), 255, np.uint8))
    return tmp_path


def test_grabcut_order_ids_and_mask_decoding(grabcut_root: Path):
    refs = list_samples("grabcut", grabcut_root)
    assert [r.id for r in refs] == ["B", "a", "c"]
    assert refs[1].files[1].name == "a.bmp"  # "a.b.bmp" finds its mask by "a"
    samples = _load_all("grabcut", grabcut_root)
    assert [s.id for s in samples] == ["B", "a", "c"]
    c = samples[2]
    assert c.dataset == "GrabCut" and c.gt.dtype == np.int8 and c.gt.shape == (4, 6)
    assert c.gt[0].tolist() == [0, 1, 0, -1, 1, 1]
    assert c.gt[1:].tolist() == [[0] * 6] * 3
    assert c.image.shape == (4, 6, 3)
    bgr = cv2.imread(str(grabcut_root / "GrabCut" / "data_GT" / "c.png"))
    assert np.array_equal(c.image, bgr[:, :, ::-1])  # RGB


def test_grabcut_hidden_file_skipped_with_warning_and_flagged(grabcut_root: Path):
    (grabcut_root / "GrabCut" / "data_GT" / ".DS_Store").write_bytes(b"\0\0")
    with pytest.warns(UserWarning, match="DS_Store"):
        refs = list_samples("grabcut", grabcut_root)
    assert [r.id for r in refs] == ["B", "a", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = verify_dataset(get_dataset("grabcut"), grabcut_root)
    # Both are accepted by a run (it skips the hidden file, thresholds the mask): warnings.
    assert [p.problem for p in report.problems] == [
        "3 images listed, expected 50",  # the fixture is small; nothing else is an error
        "3 instances found, expected 50",
    ]
    warned = [str(p) for p in report.warnings]
    assert any(".DS_Store" in p and "hidden" in p for p in warned)
    mask = grabcut_root / "GrabCut" / "boundary_GT" / "c.bmp"
    # Raw 1 and 129 become object, 64 background (the official rule, see decode_grabcut_mask).
    values = (
        f"{mask}: 3 mask pixel(s) with values other than 0/128/255 (1, 64, 129); accepted by "
        "the official threshold, which maps 2 to object (> 128, or 1) and 1 to background"
    )
    assert values in warned
    # The run's sample carries exactly the text verify prints.
    (c,) = next(r for r in refs if r.id == "c").load()
    assert c.warnings == (values,)


def test_berkeley_layout(tmp_path: Path):
    base = tmp_path / "Berkeley"
    for name in ("189011a", "189011b"):
        _write(base / "images" / f"{name}.png", _image(3, 3))
    _write(base / "masks" / "189011a.png", np.full((3, 3, 3), 255, np.uint8))
    mask_b = np.zeros((3, 3, 3), np.uint8)
    mask_b[2, 2] = 255
    _write(base / "masks" / "189011b.png", mask_b)
    samples = _load_all("berkeley", tmp_path)
    assert [s.id for s in samples] == ["189011a", "189011b"]
    assert [int(s.gt.sum()) for s in samples] == [9, 1]
    assert samples[0].dataset == "Berkeley"


# --- DAVIS / COCO_MVal: any non-zero colour is object -----------------------------------


def test_davis_merges_every_colour(tmp_path: Path):
    base = tmp_path / "DAVIS"
    _write(base / "img" / "000.jpg", _image(5, 4))
    mask = np.zeros((5, 4, 3), np.uint8)
    mask[0, 0] = (0, 0, 128)  # BGR of the DAVIS object colour (128, 0, 0) RGB
    mask[1, 1] = (192, 224, 224)  # VOC boundary colour
    mask[4, 3] = (0, 1, 0)
    _write(base / "gt" / "000.png", mask)
    (sample,) = _load_all("davis", tmp_path)
    assert sample.id == "000" and sample.dataset == "DAVIS"
    assert np.argwhere(sample.gt == 1).tolist() == [[0, 0], [1, 1], [4, 3]]
    assert not np.any(sample.gt == -1)


# --- PascalVOC: palette PNG -> BGR -> OpenCV grey ids ------------------------------------


def _palette_png(path: Path, indices: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(indices.astype(np.uint8), mode="P")
    img.putpalette(voc_palette().ravel().tolist())
    img.save(path)


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    base = tmp_path / "PascalVOC"
    sets = base / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("2008_b\n2008_a\n")
    a = np.array([[0, 1, 1, 255], [2, 2, 0, 255], [16, 0, 0, 0]])
    b = np.array([[3, 3, 0], [0, 0, 255]])
    _palette_png(base / "SegmentationObject" / "2008_a.png", a)
    _palette_png(base / "SegmentationObject" / "2008_b.png", b)
    _write(base / "JPEGImages" / "2008_a.jpg", _image(3, 4))
    _write(base / "JPEGImages" / "2008_b.jpg", _image(2, 3))
    return tmp_path


def test_voc_palette_grey_ids():
    """Grey ids of PROTOCOL.md section 8: instances 1..9 and void, in OpenCV's conversion."""
    bgr = voc_palette()[[1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 255], ::-1].reshape(1, -1, 3)
    grey = cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2GRAY)[0].tolist()
    assert grey == [38, 75, 113, 15, 53, 90, 128, 19, 57, 38, 220]


def test_pascalvoc_val_split(voc_root: Path):
    refs = list_samples("pascalvoc", voc_root)
    assert [r.id for r in refs] == ["2008_b", "2008_a"]  # val.txt order
    samples = _load_all("pascalvoc", voc_root)
    # 2008_b: palette 3 -> grey 113; 2008_a: 1 and 16 share grey 38, 2 -> 75; ascending.
    assert [s.id for s in samples] == ["2008_b#113", "2008_a#38", "2008_a#75"]
    b113, a38, a75 = samples
    assert b113.gt.tolist() == [[1, 1, 0], [0, 0, -1]]
    assert a38.gt.tolist() == [[0, 1, 1, -1], [0, 0, 0, -1], [1, 0, 0, 0]]
    assert a75.gt.tolist() == [[0, 0, 0, -1], [1, 1, 0, -1], [0, 0, 0, 0]]
    assert {s.dataset for s in samples} == {"PascalVOC"}
    assert verify_dataset(get_dataset("pascalvoc"), voc_root).problems[-1].problem == (
        "3 instances found, expected 3417"
    )


def test_pascalvoc_ritm_test_pickle(voc_root: Path):
    sets = voc_root / "PascalVOC" / "ImageSets" / "Segmentation"
    with pytest.raises(FileNotFoundError, match="test.pickle"):
        list_samples("pascalvoc_test", voc_root)
    with (sets / "test.pickle").open("wb") as f:
        pickle.dump((["2008_a", "2008_b", "2008_a"], [np.int32(75), 113, 38]), f)
    refs = list_samples("pascalvoc_test", voc_root)
    assert [r.id for r in refs] == ["2008_a", "2008_b"]
    samples = [s for r in refs for s in r.load()]
    assert [s.id for s in samples] == ["2008_a#75", "2008_a#38", "2008_b#113"]
    assert samples[0].gt.tolist() == [[0, 0, 0, -1], [1, 1, 0, -1], [0, 0, 0, 0]]


def test_pickles_that_run_code_are_refused(voc_root: Path):
    sets = voc_root / "PascalVOC" / "ImageSets" / "Segmentation"
    with (sets / "test.pickle").open("wb") as f:
        pickle.dump((["2008_a"], [Path("x")]), f)  # a class, not plain data
    with pytest.raises(FileNotFoundError, match="refusing"):
        list_samples("pascalvoc_test", voc_root)


def test_pascalvoc_flags_non_palette_colours(voc_root: Path):
    mask = voc_root / "PascalVOC" / "SegmentationObject" / "2008_b.png"
    bgr = cv2.imread(str(mask))
    bgr[0, 0] = (1, 2, 3)
    _write(mask, bgr)
    report = verify_dataset(get_dataset("pascalvoc"), voc_root)
    assert any("not VOC palette" in p.problem and p.path == str(mask) for p in report.warnings)
    # Accepted by the official grey conversion: a run evaluates it and records the same note.
    ref = next(r for r in list_samples("pascalvoc", voc_root) if r.id == "2008_b")
    for sample in ref.load():
        assert any(w.startswith(f"{mask}: ") and "not VOC palette" in w for w in sample.warnings)


# --- SBD: GTinst.Segmentation from .mat, ids ascending, optional cache pickle ------------


def _sbd_mat(path: Path, seg: np.ndarray) -> None:
    """The release's field layout: GTinst = struct(Segmentation, Boundaries, Categories)."""
    ids = [v for v in np.unique(seg) if v]
    boundaries = np.empty((len(ids), 1), dtype=object)
    for i, v in enumerate(ids):
        boundaries[i, 0] = scipy.sparse.csc_matrix(seg == v)
    categories = np.arange(1, len(ids) + 1, dtype=np.uint8).reshape(-1, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    gtinst = {"Segmentation": seg, "Boundaries": boundaries, "Categories": categories}
    scipy.io.savemat(str(path), {"GTinst": gtinst})


@pytest.fixture
def sbd_root(tmp_path: Path) -> Path:
    base = tmp_path / "SBD"
    base.mkdir()
    (base / "val.txt").write_text("2008_000002\n2008_000001\n")
    _sbd_mat(base / "inst" / "2008_000001.mat", np.array([[0, 3, 3], [1, 0, 0]], np.uint8))
    _sbd_mat(base / "inst" / "2008_000002.mat", np.array([[2, 0], [0, 0]], np.uint8))
    _write(base / "img" / "2008_000001.jpg", _image(2, 3))
    _write(base / "img" / "2008_000002.jpg", _image(2, 2))
    return tmp_path


def test_sbd_instances_from_mat_files(sbd_root: Path):
    before = sorted(p.name for p in (sbd_root / "SBD").iterdir())
    refs = list_samples("sbd", sbd_root)
    assert [r.id for r in refs] == ["2008_000002", "2008_000001"]
    samples = [s for r in refs for s in r.load()]
    assert [s.id for s in samples] == ["2008_000002#2", "2008_000001#1", "2008_000001#3"]
    assert samples[1].gt.tolist() == [[0, 0, 0], [1, 0, 0]]
    assert samples[2].gt.tolist() == [[0, 1, 1], [0, 0, 0]]
    assert {s.dataset for s in samples} == {"SBD"}
    assert not any(np.any(s.gt == -1) for s in samples)
    assert sorted(p.name for p in (sbd_root / "SBD").iterdir()) == before  # nothing written


def test_sbd_uses_official_cache_pickle_when_present(sbd_root: Path):
    with (sbd_root / "SBD" / "val_images_and_ids_list.pkl").open("wb") as f:
        pickle.dump([("2008_000001", 3), ("2008_000002", 2)], f)
    samples = _load_all("sbd", sbd_root)
    assert [s.id for s in samples] == ["2008_000001#3", "2008_000002#2"]


def test_sbd_bad_mat_names_the_file(sbd_root: Path):
    bad = sbd_root / "SBD" / "inst" / "2008_000002.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file, garbage")
    refs = list_samples("sbd", sbd_root)
    with pytest.raises(SampleError) as info:
        refs[0].load()
    assert info.value.path == str(bad)
    assert len(refs[1].load()) == 2  # the next image is unaffected


# --- ssTEM: connected components of channel 0 ------------------------------------------


def test_official_sstem_call_uses_8_connectivity():
    """SimpleClick calls `connectedComponentsWithStats(mask, 4)`; the 4 lands in `labels`."""
    mask = np.zeros((3, 3), np.uint8)
    mask[0, 0] = mask[1, 1] = 255
    official = cv2.connectedComponentsWithStats(mask, 4)[0]
    assert official == cv2.connectedComponentsWithStats(mask, connectivity=8)[0] == 2
    assert cv2.connectedComponentsWithStats(mask, connectivity=4)[0] == 3


def test_sstem_components_in_label_order(tmp_path: Path):
    base = tmp_path / "ssTEM"
    _write(base / "raw" / "slice_01.tif", _image(4, 5))
    _write(base / "raw" / "slice_00.tiff", _image(4, 5))  # not *.tif: not listed
    mask = np.zeros((4, 5), np.uint8)
    mask[0, 3] = mask[1, 4] = 255  # diagonal neighbours: one component
    mask[2, 0] = mask[3, 0] = 255  # second component, first seen later in raster order
    mask[3, 2] = 255  # third
    _write(base / "mitochondria" / "slice_01.png", mask)
    samples = _load_all("sstem", tmp_path)
    assert [s.id for s in samples] == ["slice_01#1", "slice_01#2", "slice_01#3"]
    assert [np.argwhere(s.gt == 1).tolist() for s in samples] == [
        [[0, 3], [1, 4]],
        [[2, 0], [3, 0]],
        [[3, 2]],
    ]
    assert samples[0].dataset == "ssTEM"


# --- BraTS and OAIZIB -------------------------------------------------------------------


def test_brats_merges_tumour_labels(tmp_path: Path):
    base = tmp_path / "BraTS"
    _write(base / "image" / "BraTS20_001.png", _image(3, 3)[:, :, 0])  # grey PNG
    _write(
        base / "annotation" / "BraTS20_001.png",
        np.array([[0, 1, 2], [4, 0, 0], [0, 0, 0]], np.uint8),
    )
    (sample,) = _load_all("brats", tmp_path)
    assert sample.id == "BraTS20_001" and sample.dataset == "BraTS"
    assert sample.gt.tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert sample.image.shape == (3, 3, 3)


def test_oaizib_one_object_per_label(tmp_path: Path):
    base = tmp_path / "OAIZIB" / "test"
    _write(base / "image" / "9001_070.png", _image(2, 4)[:, :, 0])
    _write(base / "annotations" / "9001_070.png", np.array([[4, 4, 0, 2], [0, 2, 0, 0]], np.uint8))
    samples = _load_all("oaizib", tmp_path)
    assert [s.id for s in samples] == ["9001_070#2", "9001_070#4"]
    assert samples[0].gt.tolist() == [[0, 0, 0, 1], [0, 1, 0, 0]]
    assert samples[1].gt.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0]]


# --- COCO-style JSON through pycocotools ------------------------------------------------


def _column_major_rle(mask: np.ndarray) -> dict:
    flat = mask.ravel(order="F").astype(np.uint8)
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def test_cocolvis_json(tmp_path: Path):
    base = tmp_path / "COCO_LVIS"
    _write(base / "images" / "a.jpg", _image(5, 6))
    _write(base / "images" / "000000000003.jpg", _image(4, 4))
    crowd = np.zeros((5, 6), np.uint8)
    crowd[1:3, 0:3] = 1
    small = np.zeros((4, 4), np.uint8)
    small[3, 3] = 1
    doc = {
        "images": [
            {"id": 7, "file_name": "a.jpg", "height": 5, "width": 6},
            {"id": 3, "coco_url": "http://x/val2017/000000000003.jpg", "height": 4, "width": 4},
            {"id": 9, "file_name": "only_crowd.jpg", "height": 5, "width": 6},
        ],
        "annotations": [
            # Polygon of the square [1, 4) x [1, 3): pixels x = 1..3, y = 1..2.
            {"id": 12, "image_id": 7, "category_id": 1, "iscrowd": 0,
             "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]], "area": 6, "bbox": [1, 1, 3, 2]},
            {"id": 11, "image_id": 7, "category_id": 1, "iscrowd": 1,
             "segmentation": _column_major_rle(crowd), "area": 6, "bbox": [0, 1, 3, 2]},
            {"id": 5, "image_id": 3, "category_id": 1, "iscrowd": 0,
             "segmentation": _column_major_rle(small), "area": 1, "bbox": [3, 3, 1, 1]},
            {"id": 6, "image_id": 9, "category_id": 1, "iscrowd": 1,
             "segmentation": _column_major_rle(crowd), "area": 6, "bbox": [0, 1, 3, 2]},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }  # fmt: skip
    (base / "annotations.json").write_text(json.dumps(doc))
    refs = list_samples("cocolvis", tmp_path)
    assert [r.id for r in refs] == ["3", "7"]  # image id order; image 9 has no object
    samples = [s for r in refs for s in r.load()]
    assert [s.id for s in samples] == ["3#5", "7#12"]
    assert np.argwhere(samples[0].gt == 1).tolist() == [[3, 3]]
    expected = np.zeros((5, 6), np.int8)
    expected[1:3, 0:3] = -1  # crowd -> ignore ...
    expected[1:3, 1:4] = 1  # ... except inside the object
    assert samples[1].gt.tolist() == expected.tolist()
    assert samples[1].dataset == "COCO_LVIS"


# --- verify and list through the CLI group ----------------------------------------------


def test_verify_names_every_bad_file_and_exits_1(grabcut_root: Path):
    base = grabcut_root / "GrabCut"
    (base / "boundary_GT" / "B.bmp").unlink()  # mask missing
    _write(base / "boundary_GT" / "a.bmp", np.full((5, 5, 3), 255, np.uint8))  # size
    _write(base / "boundary_GT" / "zz.bmp", np.full((2, 2, 3), 255, np.uint8))  # orphan
    data = (base / "data_GT" / "c.png").read_bytes()
    (base / "data_GT" / "c.png").write_bytes(data[: len(data) // 2])  # truncated
    result = CliRunner().invoke(
        datasets_cli, ["verify", "--data-root", str(grabcut_root), "--datasets", "grabcut"]
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("  ERROR")]
    warned = [line for line in result.output.splitlines() if line.startswith("  WARN")]
    assert any("data_GT/B.png" in x and "mask is missing" in x for x in lines)
    assert any("boundary_GT/a.bmp" in x and "5x5" in x and "2x3" in x for x in lines)
    assert any("zz.bmp" in x and "without an image" in x for x in warned)  # never evaluated
    assert any("data_GT/c.png" in x and "truncated PNG" in x for x in lines)
    assert any("0 instances found, expected 50" in x for x in lines)
    assert "grabcut: layout ok, 0/50 instances, 3/50 images" in result.output


def test_verify_missing_folder_and_env_data_root(tmp_path: Path):
    runner = CliRunner(env={"BENCH_DATA_ROOT": str(tmp_path)})
    result = runner.invoke(datasets_cli, ["verify", "--datasets", "davis"])
    assert result.exit_code == 1
    assert "DAVIS" in result.output and "does not exist" in result.output
    result = runner.invoke(datasets_cli, ["verify"])  # nothing present: an error, not "sound"
    assert result.exit_code == 1, result.output
    assert f"ERROR: data root {tmp_path} holds none of the requested datasets" in result.output
    assert "davis: not present, skipped" in result.output
    assert "demo: layout ok, 4/4 instances, 4/4 images: OK" in result.output
    assert "sound" not in result.output


def test_list_shows_the_papers_counts(tmp_path: Path):
    result = CliRunner().invoke(datasets_cli, ["list", "--data-root", str(tmp_path)])
    # A root holding none of the datasets is an error, as for verify; the card is still shown.
    assert result.exit_code == 1, result.output
    assert f"ERROR: data root {tmp_path} holds none of the requested datasets" in result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:] if line}
    paper = {"grabcut": "50", "berkeley": "100", "davis": "345", "pascalvoc": "3417",
             "sbd": "6671", "coco_mval": "800", "brats": "369", "oaizib": "300"}  # fmt: skip
    for name, count in paper.items():
        assert rows[name][1] == count and rows[name][3] == "missing"
    assert rows["sstem"][1] == "-"
    assert set(DATASETS) >= set(paper) | {"sstem", "cocolvis"}
