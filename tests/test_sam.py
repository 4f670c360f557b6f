"""SAM-family adapters: registry, official checkpoint files, prompt protocol, batched decoding,
published parameter counts and a `bench run` subprocess.

Random-weight networks from the packages' own builders stand in for the released weights (same
architecture, same cost); bit-equality with the official predictors is in test_sam_official.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bench.adapters import MODELS, _import_attr, make_predictor, resolve_model, supports_batch
from bench.adapters.checkpoint import CheckpointError
from bench.adapters.sam import official
from bench.adapters.sam.backends import Embedding
from bench.adapters.sam.checkpoint import identify
from bench.adapters.sam.models import PUBLISHED_PARAMS_M, SAM_PACKAGE, VARIANTS
from bench.adapters.sam.predictor import (
    JUST_BELOW_THRESHOLD,
    PromptProtocol,
    SamInstance,
    predictor_for_network,
    probability_map,
)
from bench.cli import main
from bench.sample import Click, Sample
from bench.store import read_trajectories

if importlib.util.find_spec("segment_anything") is None or importlib.util.find_spec("sam2") is None:
    pytest.skip(
        "the official packages are not installed (README, SAM-family models)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

SAM_NAMES = ("sam-vit-b", "sam-vit-l", "sam-vit-h")
SAM2_NAMES = tuple(n for n in VARIANTS if n.startswith("sam2"))
SAM_HQ_NAMES = ("sam-hq-vit-b", "sam-hq-vit-l", "sam-hq-vit-h")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: two stall on a shared CPU (bench.profile.clicks)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def networks() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {name: official.build_network(VARIANTS[name]) for name in ("sam-vit-b", "sam2-hiera-t")}


@pytest.fixture(scope="module")
def files(networks, tmp_path_factory) -> dict[str, Path]:
    """Random weights saved as the official releases are: SAM a bare state_dict, SAM 2
    `{"model": state_dict}`."""
    folder = tmp_path_factory.mktemp("sam_checkpoints")
    sam = folder / "sam_vit_b_random.pth"
    torch.save(networks["sam-vit-b"].state_dict(), sam)
    sam2 = folder / "sam2_hiera_tiny_random.pt"
    torch.save({"model": networks["sam2-hiera-t"].state_dict()}, sam2)
    return {"sam-vit-b": sam, "sam2-hiera-t": sam2}


# registry -------------------------------------------------------------------------------------
def test_every_variant_is_registered_with_an_importable_factory():
    assert set(VARIANTS) == set(SAM_NAMES + SAM2_NAMES + SAM_HQ_NAMES + ("mobilesam",))
    assert len(SAM2_NAMES) == 8  # SAM 2 and SAM 2.1, four sizes each
    for name, variant in VARIANTS.items():
        spec = MODELS[name]
        assert spec.family == variant.family
        assert spec.family == {SAM_PACKAGE: "sam", "segment-anything-hq": "sam-hq"}.get(
            variant.package, "sam2"
        )
        assert spec.needs_weights and spec.checkpoint_files == (variant.checkpoint_file,)
        assert callable(_import_attr(spec.factory))
    assert all((Path(official.sam2_builders().__file__).parent / VARIANTS[n].builder_key).is_file()
               for n in SAM2_NAMES)  # fmt: skip


def test_models_list_says_what_to_install_when_a_package_is_missing(monkeypatch):
    real = importlib.util.find_spec
    hq = real("segment_anything_hq") is not None  # a separate --no-deps install (README)
    listed = CliRunner().invoke(main, ["models", "list"]).output
    assert "sam-vit-b" in listed and "sam2.1-hiera-b+" in listed and "mobilesam" in listed
    assert listed.count("not installed") == (0 if hq else len(SAM_HQ_NAMES))

    for package, names, hint in (
        ("sam2", SAM2_NAMES, 'pip install --no-deps "sam2>=1.0"'),
        ("segment_anything_hq", SAM_HQ_NAMES, 'pip install --no-deps "segment-anything-hq>=0.3"'),
    ):
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *a, p=package, **k: None if name == p else real(name, *a, **k),
        )
        listed = CliRunner().invoke(main, ["models", "list"]).output
        hints = [line for line in listed.splitlines() if hint in line]
        assert len(hints) == len(names)
        assert all("not installed" in line for line in hints)


def test_a_missing_package_is_named_with_its_install_command(monkeypatch, files):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "segment_anything" else real(name, *a, **k),
    )
    official.segment_anything_builders.cache_clear()
    try:
        with pytest.raises(official.MissingPackageError, match=r"pip install -e \"\.\[sam\]\""):
            make_predictor(resolve_model("sam-vit-b"), checkpoint=str(files["sam-vit-b"]))
    finally:
        official.segment_anything_builders.cache_clear()


def test_package_import_never_fakes_torchvision():
    """Without a working torchvision the package's `__init__` is skipped, not patched: its
    builders import, its torchvision re-exports are absent, and torchvision stays absent."""
    code = (
        "import sys\n"
        "from bench.adapters.sam import official\n"
        "registry = official.segment_anything_builders().sam_model_registry\n"
        "print(sorted(registry), 'torchvision' in sys.modules,\n"
        "      hasattr(sys.modules['segment_anything'], 'SamPredictor'),\n"
        "      official.torchvision_import_error() is None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    works = out[-1] == "True"
    assert out[:3] == ["['default',", "'vit_b',", "'vit_h',"]
    assert out[-3:-1] == [str(works), str(works)]


# checkpoints ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sam-vit-b", "sam2-hiera-t"])
def test_official_file_loads_strictly_and_records_its_sha256(files, networks, name):
    predictor = make_predictor(resolve_model(name), checkpoint=str(files[name]), device="cpu")
    record = predictor.describe()
    assert record["checkpoint_sha256"] == hashlib.sha256(files[name].read_bytes()).hexdigest()
    assert record["checkpoint_weights_only"] is True and record["strict_load"] is True
    assert record["checkpoint_layout"] == (
        "state_dict" if name == "sam-vit-b" else "{'model': state_dict}"
    )
    loaded, built = predictor.model.state_dict(), networks[name].state_dict()
    assert loaded.keys() == built.keys()
    assert all(torch.equal(loaded[k], built[k]) for k in built)
    json.dumps(record, allow_nan=False)  # goes into the manifest as strict JSON


@pytest.mark.parametrize(
    ("file", "model", "expected"),
    [
        ("sam-vit-b", "sam-vit-l", "SAM ViT-B/16 (sam_vit_b_01ec64.pth), not of SAM ViT-L/16"),
        ("sam2-hiera-t", "sam2.1-hiera-t", "--model sam2-hiera-t"),
        ("sam2-hiera-t", "sam2-hiera-s", "SAM 2 Hiera-T"),
        ("sam-vit-b", "sam2-hiera-t", "--model sam-vit-b"),
        ("sam2-hiera-t", "sam-vit-b", "--model sam2-hiera-t"),
    ],
)
def test_a_checkpoint_of_another_variant_names_the_model_to_use(files, file, model, expected):
    with pytest.raises(CheckpointError, match=str(files[file])) as caught:
        make_predictor(resolve_model(model), checkpoint=str(files[file]))
    assert expected in str(caught.value)


def test_truncated_missing_and_foreign_files_fail_with_the_path(files, networks, tmp_path):
    data = files["sam2-hiera-t"].read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt: not a readable torch checkpoint"):
        make_predictor(resolve_model("sam2-hiera-t"), checkpoint=str(truncated))

    state = networks["sam2-hiera-t"].state_dict()
    dropped = "sam_mask_decoder.iou_prediction_head.layers.0.weight"
    missing = tmp_path / "missing.pt"
    torch.save({"model": {k: v for k, v in state.items() if k != dropped}}, missing)
    with pytest.raises(CheckpointError, match=f"1 missing key\\(s\\): {dropped}"):
        make_predictor(resolve_model("sam2-hiera-t"), checkpoint=str(missing))

    foreign = tmp_path / "simpleclick_like.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "config": {"class": "x"}}, foreign)
    with pytest.raises(CheckpointError, match="not a SAM / SAM 2 checkpoint.*state_dict, config"):
        make_predictor(resolve_model("sam2-hiera-t"), checkpoint=str(foreign))

    with pytest.raises(CheckpointError, match="nowhere.pt: checkpoint file does not exist"):
        make_predictor(resolve_model("sam-vit-b"), checkpoint=str(tmp_path / "nowhere.pt"))
    with pytest.raises(ValueError, match="sam_vit_b_01ec64.pth"):
        make_predictor(resolve_model("sam-vit-b"))


class _Pickled:
    pass


def test_a_pickle_with_objects_needs_explicit_trust(tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"model": _Pickled()}, path)
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        make_predictor(resolve_model("sam-vit-b"), checkpoint=str(path))


def test_identify_reads_the_variant_of_every_sam_network_from_its_shapes():
    builders = official.segment_anything_builders()
    for name in SAM_NAMES:
        with torch.device("meta"):  # shapes only: even ViT-H costs nothing
            network = builders.sam_model_registry[VARIANTS[name].builder_key](checkpoint=None)
        assert identify(network.state_dict()) == name
    assert identify({"a": torch.zeros(1)}) is None


@pytest.mark.slow
def test_identify_reads_every_sam2_variant_and_params_match_the_registry():
    """SAM 2 builds on the CPU only (Hiera's constructor reads values), about 30 s for all."""
    for name in SAM2_NAMES:
        network = official.build_network(VARIANTS[name])
        assert identify(network.state_dict()) == name
        total = sum(p.numel() for p in network.parameters())
        assert round(total / 1e6, 2) == MODELS[name].params_m == VARIANTS[name].params_m
        published = PUBLISHED_PARAMS_M[name]
        assert published.scope == "network"
        # The README prints SAM 2's sizes to its precision; SAM 2.1 adds 16,512 parameters
        # (no_obj_embed_spatial, obj_ptr_tpos_proj) and the README repeats the SAM 2 figures.
        tolerance = 0.5 * 10**-published.decimals + (0.0166 if name.startswith("sam2.1") else 0)
        assert abs(total / 1e6 - published.millions) <= tolerance, name


def test_sam_parameter_counts_against_the_paper():
    """Full counts equal the registry; the paper's image-encoder figures (section 7.6) match
    the package's ViT-L to the printed precision but not its ViT-B (89.67M vs 91M) and ViT-H
    (637.03M vs 636M); the mask decoder and prompt encoder hold 4.06M (the SAM FAQ's "4M")."""
    builders = official.segment_anything_builders()
    encoder_m = {}
    for name in SAM_NAMES:
        with torch.device("meta"):
            network = builders.sam_model_registry[VARIANTS[name].builder_key](checkpoint=None)
        total = sum(p.numel() for p in network.parameters())
        assert round(total / 1e6, 2) == MODELS[name].params_m == VARIANTS[name].params_m
        encoder_m[name] = sum(p.numel() for p in network.image_encoder.parameters()) / 1e6
        heads = [network.prompt_encoder, network.mask_decoder]
        assert round(sum(p.numel() for m in heads for p in m.parameters()) / 1e6) == 4
        assert PUBLISHED_PARAMS_M[name].scope == "image_encoder"
    matches = {n: round(encoder_m[n]) == PUBLISHED_PARAMS_M[n].millions for n in SAM_NAMES}
    assert matches == {"sam-vit-b": False, "sam-vit-l": True, "sam-vit-h": False}
    assert [round(encoder_m[n], 2) for n in SAM_NAMES] == [89.67, 308.28, 637.03]


# prompt protocol ------------------------------------------------------------------------------
def test_probability_threshold_against_sams_own_threshold():
    logits = torch.tensor([-1.0, -0.0401, -0.04, -0.01, -1e-9, 0.0, 1e-9, 0.01, 3.0])
    harness = probability_map(logits, "harness") > 0.49
    sam = probability_map(logits, "sam") > 0.49
    assert sam.tolist() == (logits > 0).tolist()  # SamPredictor: logits > mask_threshold (0)
    # harness: sigmoid > 0.49, i.e. logits > ln(0.49 / 0.51) = -0.0400
    assert harness.tolist() == [False, False, True, True, True, True, True, True, True]
    lowered = probability_map(logits, "sam")[2:6]
    assert (lowered == JUST_BELOW_THRESHOLD).all() and JUST_BELOW_THRESHOLD < 0.49


def _instance(name: str, size: tuple[int, int], seed: int) -> SamInstance:
    """An instance with a random embedding (decoder tests need no encoder)."""
    g = torch.Generator().manual_seed(seed)
    embed = torch.randn(1, 256, 64, 64, generator=g)
    if VARIANTS[name].package == SAM_PACKAGE:
        scale = 1024 / max(size)
        input_size = (int(size[0] * scale + 0.5), int(size[1] * scale + 0.5))
        return SamInstance(f"s{seed}", Embedding(size, embed, input_size=input_size))
    high = (torch.randn(1, 32, 256, 256, generator=g), torch.randn(1, 64, 128, 128, generator=g))
    return SamInstance(f"s{seed}", Embedding(size, embed, high_res=high))


CLICKS = [Click(40, 60, True), Click(10, 15, False), Click(70, 90, True), Click(5, 100, False)]


@pytest.mark.parametrize(
    ("protocol", "multimask", "mask_fed"),
    [
        (PromptProtocol(), [True, False, False], [False, True, True]),
        (PromptProtocol(multimask="always"), [True, True, True], [False, True, True]),
        (PromptProtocol(multimask="never"), [False, False, False], [False, True, True]),
        (PromptProtocol(mask_input=False), [True, False, False], [False, False, False]),
    ],
)
def test_prompt_protocol_options(networks, protocol, multimask, mask_fed):
    predictor = predictor_for_network(
        VARIANTS["sam-vit-b"], networks["sam-vit-b"], protocol=protocol
    )
    calls = []
    decode = predictor.backend.decode

    def spy(requests, mm):
        calls.append((mm, [r.mask_input for r in requests], [len(r.labels) for r in requests]))
        return decode(requests, mm)

    predictor.backend.decode = spy
    handle = _instance("sam-vit-b", (80, 120), 0)
    fed = []
    for k in range(1, 4):
        previous = handle.previous_low_res
        out = predictor.predict_details([(handle, CLICKS[:k])])[0]
        mm, masks, points = calls[-1]
        assert mm == multimask[k - 1] and points == [k]
        fed.append(masks[0] is not None)
        if masks[0] is not None:
            assert masks[0] is previous  # the previous click's chosen low-res logits
        assert handle.previous_low_res.shape == (1, 1, 256, 256)
        assert np.array_equal(handle.previous_low_res[0, 0].numpy(), out.low_res)
        assert out.probability.shape == (80, 120) and out.probability.dtype == np.float32
    assert fed == mask_fed


def test_options_are_validated(files):
    spec = resolve_model("sam-vit-b")
    checkpoint = str(files["sam-vit-b"])
    with pytest.raises(TypeError, match="zoom-in"):
        make_predictor(spec, checkpoint=checkpoint, zoom_in="false")
    with pytest.raises(ValueError, match="multimask='sometimes'"):
        make_predictor(spec, checkpoint=checkpoint, multimask="sometimes")
    with pytest.raises(TypeError, match="SAM 2 models only"):
        make_predictor(spec, checkpoint=checkpoint, postprocessing="false")
    with pytest.raises(TypeError, match="unknown options"):
        make_predictor(spec, checkpoint=checkpoint, flipped="yes")


def test_sam2_postprocessing_option_reaches_the_decoder(files):
    on = make_predictor(resolve_model("sam2-hiera-t"), checkpoint=str(files["sam2-hiera-t"]))
    off = make_predictor(
        resolve_model("sam2-hiera-t"), checkpoint=str(files["sam2-hiera-t"]), postprocessing="false"
    )
    assert on.model.sam_mask_decoder.dynamic_multimask_via_stability is True
    assert off.model.sam_mask_decoder.dynamic_multimask_via_stability is False
    assert off.describe()["dynamic_multimask_via_stability"] is False


def test_images_must_be_rgb_uint8(networks):
    predictor = predictor_for_network(VARIANTS["sam2-hiera-t"], networks["sam2-hiera-t"])
    gray = Sample("gray-1", np.zeros((20, 30), np.uint8), np.zeros((20, 30), np.int8), "GrabCut")
    with pytest.raises(ValueError, match="gray-1: SAM models take an H x W x 3 uint8 RGB"):
        predictor.start(gray)
    with pytest.raises(RuntimeError, match="before start"):
        predictor.predict(CLICKS[:1])


# batched interface ----------------------------------------------------------------------------
def _continuous_batching(predictor, name: str) -> list[list]:
    """Three instances at different clicks share calls, as the engine's continuous batching
    has them: instance i joins at step STARTS[i] and leaves after three clicks."""
    handles = [_instance(name, size, i) for i, size in enumerate(SIZES)]
    got: list[list] = [[] for _ in SIZES]
    for step in range(4):
        live = [i for i in range(3) if STARTS[i] <= step and step - STARTS[i] < 3]
        requests = [(handles[i], CLICKS[: step - STARTS[i] + 1]) for i in live]
        for i, out in zip(live, predictor.predict_details(requests), strict=True):
            got[i].append(out)
    return got


SIZES, STARTS = [(80, 120), (120, 80), (64, 64)], [0, 1, 1]


@pytest.mark.parametrize("name", ["sam-vit-b", "sam2-hiera-t"])
def test_batched_calls_equal_one_instance_at_a_time(networks, name):
    """By default each instance's outputs equal its own sequential run, bit for bit."""
    network = networks[name]
    batched = predictor_for_network(VARIANTS[name], network)
    assert supports_batch(batched) and not batched.backend.batches_decoder
    got = _continuous_batching(batched, name)
    single = predictor_for_network(VARIANTS[name], network)
    for i, size in enumerate(SIZES):
        handle = _instance(name, size, i)
        for k, expected in enumerate(got[i], start=1):
            out = single.predict_details([(handle, CLICKS[:k])])[0]
            assert out.index == expected.index
            assert np.array_equal(out.iou, expected.iou)
            assert np.array_equal(out.logits, expected.logits), (name, i, k)
            assert np.array_equal(out.probability, expected.probability)


def test_sam2_batch_decoder_groups_instances_and_agrees_to_float_rounding(networks):
    network = networks["sam2-hiera-t"]
    grouped = predictor_for_network(VARIANTS["sam2-hiera-t"], network, batch_decoder=True)
    calls = []  # instances per network call
    group = grouped.backend._decode_group
    grouped.backend._decode_group = lambda r, mm: calls.append(len(r)) or group(r, mm)
    got = _continuous_batching(grouped, "sam2-hiera-t")
    # step 0: [0]; 1: multimask [1, 2], single [0]; 2: [0] alone (3 points), [1, 2]; 3: [1, 2]
    assert calls == [1, 2, 1, 1, 2, 2]
    reference = _continuous_batching(
        predictor_for_network(VARIANTS["sam2-hiera-t"], network), "sam2-hiera-t"
    )
    for mine, theirs in zip(got, reference, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert a.index == b.index
            np.testing.assert_allclose(a.logits, b.logits, rtol=0, atol=1e-5)


def test_a_failing_batch_call_changes_no_handle(networks):
    predictor = predictor_for_network(VARIANTS["sam2-hiera-t"], networks["sam2-hiera-t"])
    good = _instance("sam2-hiera-t", (50, 60), 0)
    predictor.predict_batch([(good, CLICKS[:1])])
    before = (good.previous_low_res, good.clicks_predicted)
    bad = _instance("sam2-hiera-t", (50, 60), 1)
    with pytest.raises(ValueError, match="s1: predict needs at least one click"):
        predictor.predict_batch([(good, CLICKS[:2]), (bad, [])])
    assert (good.previous_low_res, good.clicks_predicted) == before
    assert bad.previous_low_res is None


# bench run ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bench_run_subprocess_with_a_random_checkpoint(files, data_root, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", "--model", "sam2-hiera-t",
         "--checkpoint", str(files["sam2-hiera-t"]), "--datasets", "grabcut",
         "--data-root", str(data_root), "--limit", "3", "--max-clicks", "5",
         "--batch-size", "2", "--threads", "1", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    frame = read_trajectories(out)
    assert frame.groupby("sample_id").ngroups == 3
    assert (frame.groupby("sample_id").size() == 5).all()
    first = frame["click"] == 1
    assert (frame.loc[first, "start_s"] > 0).all() and (frame.loc[~first, "start_s"] == 0).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    described = manifest["model"]["describe"]
    digest = hashlib.sha256(files["sam2-hiera-t"].read_bytes()).hexdigest()
    assert described["checkpoint_sha256"] == digest
    assert described["prompt_protocol"]["multimask"] == "first"
    assert manifest["engine"]["batched_predictor"] is True
