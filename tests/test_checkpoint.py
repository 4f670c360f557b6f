"""The shared checkpoint reader against the golden official-format checkpoints."""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import pytest
import torch

from bench.adapters.checkpoint import (
    CheckpointError,
    check_config_class,
    config_params,
    jsonable,
    load_state_dict_strict,
    read_checkpoint,
)

MODELS = ["simpleclick_vit_xtiny448", "ritm_hrnet18s"]
PAGE = "https://github.com/uncbiag/SimpleClick"


def manifest(golden: Path, model: str) -> dict:
    return json.loads((golden / "manifests" / f"{model}.json").read_text())


def module_like(entries: list[dict]) -> torch.nn.Module:
    """A module whose state_dict has exactly the manifest's names, order and shapes."""
    root = torch.nn.Module()
    for entry in entries:
        *parents, leaf = entry["name"].split(".")
        node = root
        for part in parents:
            if not hasattr(node, part):
                node.add_module(part, torch.nn.Module())
            node = getattr(node, part)
        tensor = torch.zeros(entry["shape"], dtype=getattr(torch, entry["dtype"]))
        node.register_buffer(leaf, tensor)
    return root


@pytest.fixture(scope="module")
def xtiny(golden: Path):
    return read_checkpoint(golden / "equivalence" / "simpleclick_vit_xtiny448_random.pth")


@pytest.mark.parametrize("model", MODELS)
def test_golden_checkpoints_read_with_weights_only(golden: Path, model: str) -> None:
    path = golden / "equivalence" / f"{model}_random.pth"
    checkpoint = read_checkpoint(path)
    expected = manifest(golden, model)
    summary = json.loads((golden / "equivalence" / "summary.json").read_text())
    assert checkpoint.weights_only
    assert checkpoint.sha256 == summary["models"][model]["checkpoint_sha256"]
    assert jsonable(checkpoint.config) == expected["config"]
    assert [(k, list(v.shape), str(v.dtype)[6:]) for k, v in checkpoint.state_dict.items()] == [
        (e["name"], e["shape"], e["dtype"]) for e in expected["state_dict"]
    ]
    params = config_params(checkpoint)
    assert list(params) == list(expected["config"]["params"])
    assert params["norm_radius"] == 5


def test_trusted_load_gives_the_same_checkpoint(golden: Path, xtiny) -> None:
    trusted = read_checkpoint(xtiny.path, trust=True)
    assert not trusted.weights_only
    assert jsonable(trusted.config) == jsonable(xtiny.config)
    assert all(torch.equal(trusted.state_dict[k], v) for k, v in xtiny.state_dict.items())


def test_list_of_dicts_uses_the_first_entry(tmp_path: Path, xtiny) -> None:
    path = tmp_path / "click_models.pth"
    first = {"state_dict": xtiny.state_dict, "config": {"class": "first", "params": {}}}
    torch.save([first, {"state_dict": {}, "config": {"class": "second"}}], path)
    assert read_checkpoint(path).config["class"] == "first"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "cocolvis_vit_base.pth"
    with pytest.raises(CheckpointError, match="does not exist") as error:
        read_checkpoint(path)
    assert str(path) in str(error.value)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint") as error:
        read_checkpoint(path)
    assert str(path) in str(error.value)


def test_non_checkpoint_pickle(tmp_path: Path) -> None:
    path = tmp_path / "numbers.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match="no 'state_dict' key"):
        read_checkpoint(path)


def test_unknown_global_needs_trust(tmp_path: Path, xtiny) -> None:
    path = tmp_path / "with_namespace.pth"
    torch.save({"state_dict": xtiny.state_dict, "config": {"args": argparse.Namespace(a=1)}}, path)
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert str(path) in message and "argparse.Namespace" in message
    assert "--trust-checkpoint" in message and "weights_only=False" in message
    assert read_checkpoint(path, trust=True).config["args"].a == 1


def test_removed_key_and_wrong_shape(tmp_path: Path, golden: Path, xtiny) -> None:
    model = module_like(manifest(golden, "simpleclick_vit_xtiny448")["state_dict"])
    load_state_dict_strict(
        model, xtiny.state_dict, architecture="SimpleClick ViT", download_page=PAGE, path="x"
    )
    assert torch.equal(model.backbone.pos_embed, xtiny.state_dict["backbone.pos_embed"])

    broken = dict(xtiny.state_dict)
    del broken["head.conv_seg.bias"]
    broken["neck.down_4.0.weight"] = torch.zeros(3, 3)
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": broken, "config": xtiny.config}, path)
    checkpoint = read_checkpoint(path)
    with pytest.raises(CheckpointError) as error:
        load_state_dict_strict(
            model,
            checkpoint.state_dict,
            architecture="SimpleClick ViT-xTiny",
            download_page=PAGE,
            path=path,
        )
    message = str(error.value)
    assert str(path) in message and "SimpleClick ViT-xTiny" in message and PAGE in message
    assert "1 missing key(s): head.conv_seg.bias" in message
    assert "1 shape mismatch(es): neck.down_4.0.weight: checkpoint (3, 3)" in message
    assert "unexpected" not in message


def test_wrong_architecture(golden: Path) -> None:
    ritm = read_checkpoint(golden / "equivalence" / "ritm_hrnet18s_random.pth")
    with pytest.raises(CheckpointError, match="HRNetModel, not of SimpleClick ViT"):
        check_config_class(
            ritm,
            "isegm.model.is_plainvit_model.PlainVitModel",
            architecture="SimpleClick ViT",
            download_page=PAGE,
        )
    model = module_like(manifest(golden, "simpleclick_vit_xtiny448")["state_dict"])
    with pytest.raises(CheckpointError) as error:
        load_state_dict_strict(
            model, ritm.state_dict, architecture="SimpleClick ViT", download_page=PAGE, path="r"
        )
    message = str(error.value)
    assert "166 missing key(s)" in message and "929 unexpected key(s)" in message
    assert "(161 more)" in message


def test_unknown_isegm_global_needs_trust_and_becomes_a_stand_in(tmp_path: Path, xtiny) -> None:
    module = types.ModuleType("isegm.fake_helpers")

    class Scheduler:
        pass

    Scheduler.__module__, Scheduler.__qualname__ = "isegm.fake_helpers", "Scheduler"
    module.Scheduler = Scheduler
    added = [name for name in ("isegm", "isegm.fake_helpers") if name not in sys.modules]
    sys.modules.setdefault("isegm", types.ModuleType("isegm"))
    sys.modules["isegm.fake_helpers"] = module
    path = tmp_path / "extra_isegm_object.pth"
    try:
        obj = Scheduler()
        obj.step = 7
        torch.save({"state_dict": xtiny.state_dict, "config": {"scheduler": obj}}, path)
    finally:
        for name in added:
            del sys.modules[name]
    with pytest.raises(CheckpointError, match="isegm.fake_helpers.Scheduler.*--trust-checkpoint"):
        read_checkpoint(path)
    stand_in = read_checkpoint(path, trust=True).config["scheduler"]
    assert jsonable(stand_in) == {
        "__object__": "isegm.fake_helpers.Scheduler",
        "attributes": {"step": 7},
    }
