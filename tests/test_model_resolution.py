"""`--model` resolution: registered names, entry points, module and file factories."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import bench.adapters as adapters
from bench.adapters import make_predictor, resolve_model

PLUGINS = Path(__file__).parent / "plugins"


def test_registered_name_resolves_to_builtin_factory():
    spec = resolve_model("grabcut-opencv")
    assert spec.family == "classical" and not spec.needs_weights
    predictor = make_predictor(spec, iterations=2)
    assert predictor.describe()["iterations"] == 2


def test_entry_point_group_registers_third_party_models(monkeypatch):
    entry = EntryPoint(
        name="reveal-plugin", value="shifted_reveal:make_predictor", group="iseg_bench.models"
    )

    def fake_entry_points(group=None):
        return [entry] if group == adapters.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(adapters, "entry_points", fake_entry_points)
    monkeypatch.syspath_prepend(str(PLUGINS))
    spec = resolve_model("reveal-plugin")
    assert spec.factory == "shifted_reveal:make_predictor"
    predictor = make_predictor(spec, radius_div=6)
    assert predictor.radius_div == 6
    assert "reveal-plugin" in adapters.all_models()


def test_file_factory_resolves_relative_and_absolute_paths(monkeypatch):
    monkeypatch.chdir(PLUGINS.parent)
    for name in (
        "plugins/shifted_reveal.py:make_predictor",
        f"{PLUGINS}/shifted_reveal.py:make_predictor",
    ):
        predictor = make_predictor(resolve_model(name))
        assert type(predictor).__name__ == "ShiftedRevealPredictor"


def test_factory_without_predictor_methods_is_refused(tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text("def make():\n    return object()\n")
    with pytest.raises(TypeError, match="no start\\(\\) method"):
        make_predictor(resolve_model(f"{plugin}:make"))


def test_missing_plugin_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.py"):
        make_predictor(resolve_model(f"{tmp_path}/nope.py:make"))
