"""Every registry refuses a name that is already taken, naming both sources."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

import bench.adapters as adapters
from bench import clicks
from bench.adapters import ModelNameError, ModelSpec, register_model
from bench.clicks import CLICK_MODELS, ClickModelNameError, register_click_model
from bench.datasets import DATASETS, DatasetNameError, get_dataset, register


def test_dataset_registered_twice_is_refused():
    before = dict(DATASETS)
    spec = get_dataset("grabcut")
    with pytest.raises(DatasetNameError) as info:
        register(spec, origin="my_package.datasets")
    message = str(info.value)
    assert "'grabcut' is already registered by bench.datasets.grabcut" in message
    assert "my_package.datasets registers it again" in message
    assert before == DATASETS and DATASETS["grabcut"] is spec


def test_model_registered_twice_is_refused():
    taken = adapters.MODELS["grabcut-opencv"]
    with pytest.raises(ModelNameError) as info:
        register_model(ModelSpec("grabcut-opencv", factory="x:y"))
    message = str(info.value)
    assert f"already registered by {taken.origin}" in message
    assert taken.origin.startswith("bench.adapters.classical")
    assert "test_registries registers it again" in message
    assert adapters.MODELS["grabcut-opencv"] is taken


def test_model_entry_point_under_a_builtin_name_is_refused(monkeypatch):
    entry = EntryPoint(name="grabcut-opencv", value="pkg.mod:make", group="iseg_bench.models")
    monkeypatch.setattr(
        adapters, "entry_points", lambda group=None: [entry] if group == "iseg_bench.models" else []
    )
    with pytest.raises(ModelNameError, match="entry point grabcut-opencv = pkg.mod:make"):
        adapters.resolve_model("grabcut-opencv")


def test_click_model_registered_twice_is_refused():
    before = dict(CLICK_MODELS)
    with pytest.raises(ClickModelNameError) as info:
        register_click_model("jitter", "my_clicks:jitter")
    message = str(info.value)
    assert (
        "'jitter' is already registered by bench.clicks (bench.clicks.simulated:jitter)" in message
    )
    assert "test_registries registers it again (my_clicks:jitter)" in message
    assert before == CLICK_MODELS


def test_click_model_registers_once(monkeypatch):
    monkeypatch.setattr(clicks, "CLICK_MODELS", dict(CLICK_MODELS))
    monkeypatch.setattr(clicks, "CLICK_MODEL_ORIGINS", dict(clicks.CLICK_MODEL_ORIGINS))
    register_click_model("official-again", "bench.clicks:official", origin="test")
    assert clicks.parse_click_model("official-again").name == "official-again"
    with pytest.raises(ClickModelNameError, match="already registered by test"):
        register_click_model("official-again", "bench.clicks:official")
