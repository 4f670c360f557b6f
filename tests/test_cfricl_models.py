"""`cfr-icl-*` registry entries, CFR-ICL checkpoints (SimpleClick format, golden/cfricl B3) and the
`cf_n` / `acf` / `cf_click` options of every SimpleClick model."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.adapters import MODELS, make_predictor
from bench.adapters.checkpoint import (
    CheckpointError,
    CrossEntropyLossStandIn,
    pickle_globals,
    read_checkpoint,
)
from bench.adapters.common.cascade import CascadeConfig
from bench.adapters.simpleclick.predictor import (
    cascade_from_options,
    make_cfricl_vit_b,
    make_simpleclick_predictor,
    make_vit_xt,
)
from bench.cli.model_options import factory_options
from bench.sample import Click, Sample

XTINY = "simpleclick_vit_xtiny448"
LOSS_MODULE = "isegm.model.modeling.transformer_helper.cross_entropy_loss"


@pytest.fixture(scope="module")
def xtiny_checkpoint(golden: Path) -> Path:
    return golden / "equivalence" / f"{XTINY}_random.pth"


def _decode(obj):
    """The JSON encoding of golden/manifests back to Python (tuples restored)."""
    if isinstance(obj, dict):
        if set(obj) == {"__tuple__"}:
            return tuple(_decode(x) for x in obj["__tuple__"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(x) for x in obj]
    return obj


def _official_loss_globals(monkeypatch: pytest.MonkeyPatch):
    """Module objects under the official dotted names, so that `torch.save` pickles the loss
    object exactly as isegm's `save_checkpoint` does (globals named `isegm....`)."""
    parts = LOSS_MODULE.split(".")
    for i in range(1, len(parts) + 1):
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    module = sys.modules[LOSS_MODULE]
    loss_class = type("CrossEntropyLoss", (), {"__module__": LOSS_MODULE})

    def cross_entropy():  # pragma: no cover - never called
        raise AssertionError

    cross_entropy.__module__ = LOSS_MODULE
    cross_entropy.__qualname__ = "cross_entropy"
    module.CrossEntropyLoss = loss_class
    module.cross_entropy = cross_entropy
    return loss_class, cross_entropy


@pytest.fixture(scope="module")
def vit_b_checkpoint(golden: Path, xtiny_checkpoint: Path, tmp_path_factory) -> Path:
    """A random-weight ViT-B checkpoint in the official format CFR-ICL writes (golden/cfricl B3:
    `{"state_dict", "config"}` with SimpleClick's ViT-B names, config class and pickled loss
    object): weights by golden/tools/regenerate_checkpoint.py's rule from the ViT-B manifest,
    config = the manifest's, with the loss object taken from the official xTiny file."""
    spec = importlib.util.spec_from_file_location(
        "regenerate_checkpoint", golden / "tools" / "regenerate_checkpoint.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    manifest = json.loads((golden / "manifests" / "simpleclick_vit_base448.json").read_text())
    state_dict = tool.draw_state_dict(manifest["state_dict"])
    config = _decode(manifest["config"])
    stand_in = read_checkpoint(xtiny_checkpoint).config["params"]["head_params"]["value"][
        "loss_decode"
    ]
    assert isinstance(stand_in, CrossEntropyLossStandIn)
    path = tmp_path_factory.mktemp("cfricl") / "cocolvis_vit_base_random.pth"
    with pytest.MonkeyPatch.context() as monkeypatch:
        loss_class, cross_entropy = _official_loss_globals(monkeypatch)
        loss = loss_class.__new__(loss_class)
        loss.__dict__.update(copy.copy(vars(stand_in)))
        loss.cls_criterion = cross_entropy
        config["params"]["head_params"]["value"]["loss_decode"] = loss
        torch.save({"state_dict": state_dict, "config": config}, path)
    return path


@pytest.mark.slow
def test_cfricl_vit_b_loads_an_official_format_checkpoint_strictly(golden, vit_b_checkpoint):
    """The file has the pickle globals CFR-ICL's `save_checkpoint` writes, reads with the safe
    loader, and loads strictly into `cfr-icl-vit-b`: the 214 names in order, 98,025,513
    parameters (statedict_vs_simpleclick_vit_base448.json), CFR-ICL's evaluation defaults."""
    compat = json.loads(
        (golden / "cfricl" / "statedict_vs_simpleclick_vit_base448.json").read_text()
    )
    assert compat["names_equal_in_order"] and compat["shapes_equal"] and compat["dtypes_equal"]
    file_format = compat["checkpoint_format"]
    with zipfile.ZipFile(vit_b_checkpoint) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert sorted(set(pickle_globals(data))) == sorted(file_format["pickle_globals"])

    predictor = make_predictor(
        MODELS["cfr-icl-vit-b"], checkpoint=str(vit_b_checkpoint), device="cpu"
    )
    loaded = predictor.model.state_dict()
    manifest = json.loads((golden / "manifests" / "simpleclick_vit_base448.json").read_text())
    assert [e["name"] for e in manifest["state_dict"]] == list(loaded)
    assert len(loaded) == compat["n_entries"] == 214
    assert sum(t.numel() for t in loaded.values()) == compat["total_parameters"]
    saved = read_checkpoint(vit_b_checkpoint).state_dict
    assert all(torch.equal(saved[name], tensor) for name, tensor in loaded.items())
    description = predictor.describe()
    assert description["model"] == "cfr-icl-vit-b" and description["strict_load"]
    assert description["cascade"]["cf_n"] == 4 and description["cascade"]["acf"] is True
    assert description["config"]["embed_dim"] == 768
    cascade = predictor.pipeline.cascade
    assert cascade == CascadeConfig(cf_n=4, acf=True, cf_click=1)
    # A ViT-B checkpoint is refused by the other sizes with the model to use.
    with pytest.raises(CheckpointError, match="use model simpleclick-vit-b"):
        make_predictor(MODELS["cfr-icl-vit-h"], checkpoint=str(vit_b_checkpoint), device="cpu")


def test_strict_loading_names_missing_and_unexpected_keys(xtiny_checkpoint, tmp_path):
    checkpoint = read_checkpoint(xtiny_checkpoint)
    state_dict = dict(checkpoint.state_dict)
    state_dict.pop("head.conv_seg.weight")
    state_dict["backbone.extra_token"] = torch.zeros(3)
    broken = tmp_path / "broken.pth"
    torch.save({"state_dict": state_dict, "config": {}}, broken)
    with pytest.raises(CheckpointError) as error:
        make_simpleclick_predictor("xtiny", name="cfr-icl-x", checkpoint=str(broken), cf_n=4)
    message = str(error.value)
    assert str(broken) in message
    assert "1 missing key(s): head.conv_seg.weight" in message
    assert "1 unexpected key(s): backbone.extra_token" in message


def test_cascade_on_a_real_network_is_repeated_prediction_on_the_same_clicks(xtiny_checkpoint):
    """One cascade step is an ordinary prediction from the previous step's state (CFR-ICL
    `get_prediction(..., on_cascade=True)`): cf_n = 1 on click 1 equals predicting click 1
    twice without it, bit for bit; later clicks are single forwards either way."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    sample = Sample("x", image, np.zeros((120, 160), np.int8), "GrabCut")
    clicks = [Click(60, 80, True), Click(20, 30, False)]
    cascaded = make_vit_xt(checkpoint=str(xtiny_checkpoint), device="cpu", cf_n=1, input_size=224)
    plain = make_vit_xt(checkpoint=str(xtiny_checkpoint), device="cpu", input_size=224)
    cascaded.start(sample)
    plain.start(sample)
    first = cascaded.predict(clicks[:1])
    assert cascaded.pipeline.trace.forwards == 2
    plain.predict(clicks[:1])
    assert np.array_equal(plain.predict(clicks[:1]), first)
    assert cascaded.pipeline.state.zoom == plain.pipeline.state.zoom
    second = cascaded.predict(clicks)
    assert cascaded.pipeline.trace.forwards == 1
    assert np.array_equal(plain.predict(clicks), second)


def test_options_flow_from_the_command_line_into_the_manifest(xtiny_checkpoint):
    """`--model-option cf_n=3 --model-option acf=true` on a SimpleClick model."""
    kw = {
        "checkpoint": xtiny_checkpoint,
        "device": "cpu",
        "dtype": None,
        "trust_checkpoint": False,
        "model_options": ("cf_n=3", "acf=true"),
    }
    options = factory_options(kw)
    assert options["cf_n"] == 3 and options["acf"] is True
    predictor = make_predictor(MODELS["simpleclick-vit-xt"], **options)
    assert predictor.pipeline.cascade == CascadeConfig(cf_n=3, acf=True)
    description = predictor.describe()
    assert description["cascade"]["cf_n"] == 3 and description["cascade"]["acf"] is True
    assert "cascade" in description["predictor"]
    default = make_vit_xt(checkpoint=str(xtiny_checkpoint), device="cpu").describe()
    assert default["cascade"]["cf_n"] == 0 and "cascade" not in default["predictor"]
    # cfr-icl-* defaults can be overridden like any option.
    assert cascade_from_options("m", {"cf_n": "2", "acf": "false"}) == CascadeConfig(2, False)


@pytest.mark.parametrize(
    "bad", [{"cf_n": -1}, {"cf_n": 1.5}, {"cf_n": True}, {"cf_click": "x"}, {"acf": "maybe"}]
)
def test_bad_cascade_options_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        cascade_from_options("simpleclick-vit-b", bad)


def test_missing_checkpoint_names_the_cfricl_release():
    with pytest.raises(ValueError) as error:
        make_cfricl_vit_b(device="cpu")
    assert "cocolvis_vit_base.pth" in str(error.value)
    with pytest.raises(ValueError) as error:
        make_predictor(MODELS["cfr-icl-vit-h"], device="cpu")
    message = str(error.value)
    assert "cocolvis_icl_vit_huge.pth" in message and "TitorX/CFR-ICL" in message


def test_registry_entries():
    for name, variant, params in (
        ("cfr-icl-vit-b", "base", 96.46),
        ("cfr-icl-vit-l", "large", 322.18),
        ("cfr-icl-vit-h", "huge", 659.39),
    ):
        spec = MODELS[name]
        assert spec.needs_weights and spec.params_m == params
        assert spec.extra["variant"] == variant
        assert spec.extra["cascade"] == {"cf_n": 4, "acf": True, "cf_click": 1}
        assert "cf_n" in spec.description and "acf" in spec.description
        simpleclick = MODELS[name.replace("cfr-icl", "simpleclick")]
        assert spec.family == simpleclick.family and spec.input_size == simpleclick.input_size
    assert MODELS["cfr-icl-vit-h"].checkpoint_files[0] == "cocolvis_icl_vit_huge.pth"
    code = "import sys, bench.adapters.simpleclick.models; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_cfricl_reference_rows_name_their_source_and_setting():
    from bench.reports.reference import known_references, published_metric, reference_table

    davis = published_metric("cfr-icl-vit-h-cf1/cocolvis", "DAVIS", "NoC@90")
    assert davis.value == 4.24 and "2303.05620" in davis.source and "--cf-n=1" in davis.source
    sbd = published_metric("simpleclick-vit-h-cf1/sbd", "SBD", "NoC@90")
    assert sbd.value == 4.08 and "'SimpleClick CFR-1 (ViT-H, SBD)'" in sbd.source
    assert published_metric("cfr-icl-vit-h-cf1/sbd", "GrabCut", "NoC@95").value == 1.62
    keys = {"cfr-icl-vit-h-cf1/cocolvis", "cfr-icl-vit-h-cf1/sbd", "simpleclick-vit-h-cf1/sbd"}
    assert keys <= set(known_references())
    table = reference_table()
    rows = table[table["reference"].isin(keys)]
    assert len(rows) == 13 and rows["paper_table"].isna().all()  # not SimpleClick's tables
    assert (rows["source"].str.contains("Papers with Code")).all()
