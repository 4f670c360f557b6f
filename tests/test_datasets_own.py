"""Own data with no code (`folder:PATH`, `coco:JSON`) and dataset plugins, end to end.

GrabCut re-laid out as `images/` + `masks/` (0/128/255 PNGs, ignore=128), or written as a
COCO file (object RLE + its 128 band as an iscrowd region), must give the official GrabCut
trajectories of `golden/protocol/GrabCut.json` exactly, through `bench run`.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools import mask as mask_utils

from bench.cli import main
from bench.datasets import DatasetNameError, get_dataset, split_dataset_specs
from bench.store import read_trajectories

PLUGINS = Path(__file__).parent / "plugins"
REVEAL = f"{PLUGINS / 'shifted_reveal.py'}:make_predictor"


@pytest.fixture(scope="module")
def grabcut_folder(data_root, tmp_path_factory) -> Path:
    """The shared GrabCut copy as PATH/images (the JPEGs) + PATH/masks (grey PNGs)."""
    root = tmp_path_factory.mktemp("own") / "GrabCutFolder"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for image in sorted((data_root / "GrabCut" / "data_GT").iterdir()):
        (root / "images" / image.name).write_bytes(image.read_bytes())
    for mask in sorted((data_root / "GrabCut" / "boundary_GT").iterdir()):
        cv2.imwrite(str(root / "masks" / f"{mask.stem}.png"), cv2.imread(str(mask))[:, :, 0])
    return root


def _rle(selected: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(selected.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


@pytest.fixture(scope="module")
def grabcut_coco(grabcut_folder) -> Path:
    """`bench datasets to-coco`: object RLEs, the 128 band as an iscrowd region."""
    path = grabcut_folder.parent / "grabcut_coco.json"
    spec = f"folder:{grabcut_folder},ignore=128"
    result = CliRunner().invoke(main, ["datasets", "to-coco", spec, "--out", str(path)])
    assert result.exit_code == 0, result.output
    data = json.loads(path.read_text())
    assert len(data["images"]) == 50
    assert sum(a["iscrowd"] for a in data["annotations"]) == 42  # 8 masks have no band
    return path


def _run(tmp_path: Path, datasets: str, *extra: str) -> tuple[Path, object]:
    out = tmp_path / "run"
    args = ["run", "--model", REVEAL, "--datasets", datasets, "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(main, [*args, *extra])
    assert result.exit_code == 0, result.output
    return out, result


def _assert_golden(out: Path, golden: Path, count: int) -> None:
    reference = json.loads((golden / "protocol" / "GrabCut.json").read_text())
    groups = list(read_trajectories(out).groupby("sample_id", sort=False))
    assert len(groups) == count
    for (sid, group), inst in zip(groups, reference["instances"]):
        assert sid.split("#")[0] == Path(inst["image"]).stem
        clicks = [[int(r.y), int(r.x), bool(r.positive)] for r in group.itertuples()]
        assert clicks == inst["clicks"], sid
        np.testing.assert_array_equal(
            group["iou"].to_numpy(), np.asarray(inst["ious"], np.float32), sid
        )


@pytest.mark.slow
def test_folder_spec_reproduces_official_grabcut(grabcut_folder, golden, tmp_path):
    out, _ = _run(tmp_path, f"folder:{grabcut_folder},ignore=128,name=mine", "--limit", "20")
    _assert_golden(out, golden, 20)
    record = json.loads((out / "manifest.json").read_text())["datasets"]["mine"]
    assert record["rule"] == "gt128" and record["ignore"] == 128
    assert record["listing"].startswith("images sorted by file name")
    assert set(read_trajectories(out)["dataset"]) == {"mine"}


@pytest.mark.slow
def test_coco_spec_reproduces_official_grabcut(grabcut_coco, grabcut_folder, golden, tmp_path):
    spec = f"coco:{grabcut_coco},images={grabcut_folder / 'images'}"
    out, _ = _run(tmp_path, spec, "--limit", "15")
    _assert_golden(out, golden, 15)
    record = json.loads((out / "manifest.json").read_text())["datasets"]["grabcut_coco"]
    assert record["crowd"] == "ignore"


def test_card_gives_options_and_spec_overrides_it(grabcut_folder):
    card = grabcut_folder / "iseg-dataset.toml"
    card.write_text('name = "carded"\nignore = 128\nexpected_instances = 50\ncitation = "me"\n')
    try:
        spec = get_dataset(f"folder:{grabcut_folder}")
        assert (spec.name, spec.expected_instances, spec.citation) == ("carded", 50, "me")
        (sample,) = spec.list_samples(spec.bundled_root)[1].load()  # 124080: has a 128 band
        assert sample.dataset == "carded" and (sample.gt == -1).any()
        spec = get_dataset(f"folder:{grabcut_folder},name=other,rule=nonzero")
        assert (spec.name, spec.manifest["rule"], spec.manifest["ignore"]) == (
            "other",
            "nonzero",
            128,
        )
        card.write_text("rule = 'bogus'\n")
        with pytest.raises(ValueError, match="iseg-dataset.toml: rule='bogus'"):
            get_dataset(f"folder:{grabcut_folder}")
    finally:
        card.unlink()


def test_instance_id_masks_grey_and_rgb(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    image = np.full((6, 8, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "images" / "a.png"), image)
    cv2.imwrite(str(tmp_path / "images" / "b.jpg"), image)
    grey = np.zeros((6, 8), np.uint8)
    grey[:2], grey[3:], grey[2, :3] = 7, 3, 255
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), grey)
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:3, :, 2] = 1  # R = 1 -> id 65536
    rgb[3:, :, 0] = 2  # B = 2 -> id 2
    cv2.imwrite(str(tmp_path / "masks" / "b.png"), rgb)
    spec = get_dataset(f"folder:{tmp_path},rule=instances,ignore=255,name=inst")
    refs = spec.list_samples(spec.bundled_root)
    assert [r.id for r in refs] == ["a", "b"]
    a, b = (ref.load() for ref in refs)
    assert [s.id for s in a] == ["a#3", "a#7"]
    assert [int((s.gt == 1).sum()) for s in a] == [24, 16]
    assert all(int((s.gt == -1).sum()) == 3 for s in a)
    assert [s.id for s in b] == ["b#2", "b#65536"]


def test_coco_polygon_and_crowd_skip(tmp_path):
    cv2.imwrite(str(tmp_path / "p.png"), np.zeros((10, 10, 3), np.uint8))
    square = [[2, 2, 7, 2, 7, 7, 2, 7]]
    data = {
        "images": [{"id": 5, "file_name": "p.png", "height": 10, "width": 10}],
        "annotations": [
            {"id": 9, "image_id": 5, "iscrowd": 0, "segmentation": square},
            {"id": 10, "image_id": 5, "iscrowd": 1, "segmentation": _rle(np.ones((10, 10)))},
        ],
    }
    (tmp_path / "poly.json").write_text(json.dumps(data))
    (sample,) = get_dataset(f"coco:{tmp_path / 'poly.json'}").list_samples(tmp_path)[0].load()
    assert sample.id == "p#9" and (sample.gt == 1).sum() > 0
    assert (sample.gt == -1).sum() == 100 - (sample.gt == 1).sum()  # crowd=ignore
    spec = get_dataset(f"coco:{tmp_path / 'poly.json'},crowd=skip")
    (sample,) = spec.list_samples(tmp_path)[0].load()
    assert not (sample.gt == -1).any()


def test_split_keeps_options_with_their_spec():
    assert split_dataset_specs("grabcut, folder:/d,ignore=128,name=x ,coco:a.json,images=b") == (
        "grabcut",
        "folder:/d,ignore=128,name=x",
        "coco:a.json,images=b",
    )
    with pytest.raises(ValueError, match="follows no dataset"):
        split_dataset_specs("ignore=3,grabcut")


def test_two_datasets_of_one_name_in_a_run_are_refused(grabcut_folder, grabcut_coco, tmp_path):
    specs = f"folder:{grabcut_folder},name=x,coco:{grabcut_coco},images=/tmp,name=x"
    args = ["run", "--model", REVEAL, "--datasets", specs, "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and "are both named 'x'" in result.output


def test_own_data_may_not_take_a_registered_name(grabcut_folder):
    with pytest.raises(DatasetNameError, match="'davis' is already registered by"):
        get_dataset(f"folder:{grabcut_folder},name=davis")
    with pytest.raises(DatasetNameError, match="bench.datasets.grabcut"):
        get_dataset(f"folder:{grabcut_folder},name=GrabCut")


def test_file_plugin_runs_with_options(data_root, golden, tmp_path):
    spec = f"{PLUGINS / 'dataset_plugin.py'}:first_grabcut,count=2"
    out, _ = _run(tmp_path, spec, "--data-root", str(data_root))
    _assert_golden(out, golden, 2)
    assert "grabcut-first2" in json.loads((out / "manifest.json").read_text())["datasets"]


def _distribution(where: Path, entry: str) -> None:
    """A temporary installed distribution: a dist-info with an entry_points.txt."""
    info = where / "iseg_test_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: iseg-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[iseg_bench.datasets]\n{entry}\n")
    (where / "iseg_test_dataset_plugin.py").write_text((PLUGINS / "dataset_plugin.py").read_text())


def test_entry_point_plugin_is_found_and_run(data_root, golden, tmp_path, monkeypatch):
    _distribution(tmp_path / "site", "grabcut-ep = iseg_test_dataset_plugin:first_grabcut")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = get_dataset("grabcut-ep")
    assert spec.name == "grabcut-ep" and "distribution iseg-test-plugin" in spec.origin
    out, _ = _run(tmp_path, "grabcut-ep", "--data-root", str(data_root))
    _assert_golden(out, golden, 3)
    listed = CliRunner().invoke(main, ["datasets", "list", "--data-root", str(data_root)])
    assert "grabcut-ep" in listed.output and "found, 3 images" in listed.output
    sys.modules.pop("iseg_test_dataset_plugin", None)


def test_entry_point_under_a_builtin_name_is_refused(tmp_path, monkeypatch):
    _distribution(tmp_path / "site", "davis = iseg_test_dataset_plugin:first_grabcut")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(DatasetNameError) as info:
        get_dataset("grabcut")
    assert "bench.datasets.davis" in str(info.value)
    assert "entry point davis = iseg_test_dataset_plugin:first_grabcut" in str(info.value)


def _with_orientation(jpeg: bytes, value: int) -> bytes:
    """The JPEG with an EXIF APP1 segment holding only Orientation = value."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, value, 0) + bytes(4)
    exif = b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg[2:]


def test_verify_warns_on_exif_orientation(grabcut_folder, tmp_path):
    root = tmp_path / "tagged"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, value in (("124080", 3), ("153077", 1)):
        jpeg = (grabcut_folder / "images" / f"{stem}.jpg").read_bytes()
        (root / "images" / f"{stem}.jpg").write_bytes(_with_orientation(jpeg, value))
        mask = (grabcut_folder / "masks" / f"{stem}.png").read_bytes()
        (root / "masks" / f"{stem}.png").write_bytes(mask)
    result = CliRunner().invoke(
        main, ["datasets", "verify", "--datasets", f"folder:{root},ignore=128"]
    )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "WARN" in line]
    assert len(warnings) == 1 and "124080.jpg: EXIF Orientation 3 (rotated 180" in warnings[0]
    assert "cv2.imread" in warnings[0]
    spec = get_dataset(f"folder:{root}")
    (turned,) = spec.list_samples(root)[0].load()
    upright = cv2.imread(str(root / "images" / "124080.jpg"))
    assert np.array_equal(turned.image, cv2.cvtColor(upright, cv2.COLOR_BGR2RGB))
    out, _ = _run(tmp_path, f"folder:{root},ignore=128", "--limit", "1", "--max-clicks", "1")
    recorded = json.loads((out / "manifest.json").read_text())["warnings"]
    assert any("EXIF Orientation 3" in json.dumps(w) for w in recorded), recorded
