"""`bench run`: resolve the model and datasets, evaluate, write the run directory, resume.

The manifest pins what makes two runs comparable (model, options, checkpoint hash, dataset
listing fingerprints, protocol settings including the click model and seed, limit, shard); a
restart with the same command continues where the journal ends, and one with different
settings is refused instead of mixed in. Nothing is created on disk before the model and the
datasets resolved, so a failed start leaves no empty run folder behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from bench import __version__
from bench.adapters import ModelSpec, make_predictor, plugin_file, resolve_model, supports_batch
from bench.clicks import make_click_model
from bench.datasets import dataset_root, get_dataset
from bench.engine.instance import ProtocolSettings
from bench.engine.loop import evaluate_dataset
from bench.engine.shards import Shard
from bench.sample import SampleRef, is_oracle
from bench.store import JOURNAL, MANIFEST, EntryRecord, InstanceRecord, ResultStore, save_masks
from bench.store.manifest import identity_differences, run_status

log = logging.getLogger("bench")

SCHEMA = 2
"""2: journal entries carry their listing index; protocol records click model and seed."""


class RunMismatchError(RuntimeError):
    """The output folder holds a run made with other settings."""


@dataclass(frozen=True)
class RunRequest:
    model: str
    datasets: tuple[str, ...]
    out: Path
    model_options: dict[str, Any]
    data_root: Path | None = None
    settings: ProtocolSettings = ProtocolSettings()
    limit: int | None = None
    threads: int | None = None
    save_masks: bool = False
    reference: str | None = None  # published row to compare with in reports
    command: tuple[str, ...] = ()
    progress: bool = True
    batch_size: int = 1  # instances in flight (continuous batching); 1 = the official loop
    shard: Shard | None = None  # this process's slice of every dataset
    harness_threads: int | None = None  # per-instance click rule and scoring; None = auto
    pipeline: bool | None = None  # overlap model and harness in two cohorts; None = on CUDA
    traceback: bool = False  # keep (and print) the traceback of each failing instance


def check_request(request: RunRequest) -> None:
    """Refuse what no run can use before a model is loaded or a folder created (the CLI's
    option types say the same with the option names; this guards programmatic callers)."""
    if not request.datasets:
        raise ValueError("--datasets: give at least one dataset name")
    for option, value in (
        ("--limit", request.limit),
        ("--threads", request.threads),
        ("--batch-size", request.batch_size),
        ("--harness-threads", request.harness_threads),
    ):
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ValueError(f"{option} {value}: must be a whole number of at least 1")


def model_device(predictor: Any, model_record: dict[str, Any], options: dict[str, Any]) -> str:
    """Where the model really runs: what the predictor says (`describe()["device"]`, or a
    `device` attribute), not the `--device` text, since deep factories pick CUDA by
    themselves when it is available; the option, else "cpu", for predictors that do not say."""
    described = (model_record.get("describe") or {}).get("device")
    if described:
        return str(described)
    attribute = getattr(predictor, "device", None)
    if attribute is not None and not callable(attribute):
        return str(attribute)
    return str(options.get("device") or "cpu")


def engine_layout(request: RunRequest, batched: bool, device: str | None = None) -> dict[str, Any]:
    """How the engine runs: never what it computes (these choices change no click or IoU,
    so they are not part of a run's identity and a resume may change them).

    Auto choices: harness threads = min(batch size, CPU count, 8) (one at batch 1, the
    official loop); pipelining only when the model runs on CUDA (`model_device`), where the
    CPU is free while the network runs (on a CPU the network already keeps every core busy)."""
    if device is None:
        device = str(request.model_options.get("device") or "cpu")
    batch = request.batch_size if batched else 1
    threads = request.harness_threads
    if threads is None:
        threads = min(batch, os.cpu_count() or 1, 8)
    pipeline = request.pipeline
    if pipeline is None:
        pipeline = device.startswith("cuda")
    return {
        "model_device": device,
        "batch_size": request.batch_size,
        "batched_predictor": batched,
        "effective_batch_size": batch,
        "harness_threads": max(1, int(threads)),
        "pipeline": bool(pipeline and batched),
    }


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def listing_fingerprint(refs: Sequence[SampleRef], root: Path) -> str:
    """sha256 over every listed file's relative path and size.

    Cheap enough for COCO-sized sets and enough to tell dataset copies apart (for example
    the DAVIS variant with separately merged objects); pixels are not hashed.
    """
    digest = hashlib.sha256()
    for ref in refs:
        for path in ref.files:
            try:
                rel, size = str(Path(path).relative_to(root)), Path(path).stat().st_size
            except (ValueError, OSError):
                rel, size = str(path), -1
            digest.update(f"{rel}\0{size}\n".encode())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"iseg_bench": __version__, "python": platform.python_version()}
    for dist in ("numpy", "opencv-python-headless", "opencv-python", "pandas", "scipy", "torch"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def device_info() -> dict[str, Any]:
    info: dict[str, Any] = {"machine": platform.machine(), "platform": platform.platform()}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
            info["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
            info["tf32_cudnn"] = bool(torch.backends.cudnn.allow_tf32)
    return info


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    import cv2

    cv2.setNumThreads(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def _factory_name(spec: ModelSpec) -> str:
    """`package.module:function` (or `/abs/file.py:function`): the same text in every run of
    the same factory, never a repr with a memory address."""
    if isinstance(spec.factory, str):
        return spec.factory
    if "factory" in spec.extra:
        return str(spec.extra["factory"])
    factory = spec.factory
    module = getattr(factory, "__module__", None) or "?"
    return f"{module}:{getattr(factory, '__qualname__', type(factory).__name__)}"


def _model_record(spec: ModelSpec, options: dict[str, Any], predictor: Any) -> dict[str, Any]:
    checkpoint = options.get("checkpoint")
    describe = getattr(predictor, "describe", None)
    described = describe() if callable(describe) else None
    # Adapters that read the checkpoint already hashed it; hashing again rereads GBs (ViT-H).
    sha256 = (described or {}).get("checkpoint_sha256")
    if checkpoint and not sha256:
        sha256 = file_sha256(checkpoint)
    source = plugin_file(spec)
    record: dict[str, Any] = {
        "name": spec.name,
        "family": spec.family,
        "factory": _factory_name(spec),
        # A plugin's code is part of the model: a resume with an edited file is refused.
        "plugin_file": str(source) if source else None,
        "plugin_sha256": file_sha256(source) if source else None,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()},
        "checkpoint": str(checkpoint) if checkpoint else None,
        "checkpoint_sha256": sha256 if checkpoint else None,
        # An oracle receives the ground truth: reports mark its runs and never rank them.
        "oracle": is_oracle(predictor),
    }
    if described is not None:
        record["describe"] = described
    return record


def _check_resumable(old: dict[str, Any] | None, new: dict[str, Any], out: Path) -> None:
    if old is None:
        return
    differences = identity_differences(old, new)
    if old.get("shard") != new.get("shard"):
        differences.append("shard")
    if differences:
        raise RunMismatchError(
            f"{out} holds a run with other settings ({out / MANIFEST}; differs in "
            f"{', '.join(differences)}); use another --out, or --overwrite to start again"
        )


def run(request: RunRequest) -> dict[str, Any]:
    """Evaluate and write the run directory; returns the final manifest.

    Under torchrun (WORLD_SIZE > 1 and no explicit `--shard`) each rank runs its shard and
    rank 0 merges them (`bench.engine.distributed`).
    """
    from bench.engine import distributed

    if request.shard is None and distributed.world() is not None:
        return distributed.run_ranks(request, run_one)
    return run_one(request)


def run_one(request: RunRequest) -> dict[str, Any]:
    """One process's run (a whole run, or one shard of it)."""
    check_request(request)
    spec = resolve_model(request.model)
    settings = request.settings
    click_model = make_click_model(settings.click_model)

    listings: dict[str, tuple[Path, list[SampleRef]]] = {}
    dataset_records: dict[str, dict[str, Any]] = {}
    given: dict[str, str] = {}
    for name in request.datasets:
        dspec = get_dataset(name)
        if dspec.name in given:
            raise ValueError(
                f"--datasets: {given[dspec.name]!r} and {name!r} are both named "
                f"{dspec.name!r}; give one another name (name=...)"
            )
        given[dspec.name] = name
        root = dataset_root(dspec, request.data_root)
        refs = dspec.list_samples(root)
        listings[dspec.name] = (root, refs)
        dataset_records[dspec.name] = {
            "folder": dspec.folder,
            "root": str(root),
            "fingerprint": listing_fingerprint(refs, root),
            "entries": len(refs),
            "expected_instances": dspec.expected_instances,
            "limit": request.limit,
            **dspec.manifest,
        }

    old = _read_manifest(request.out)
    request = _masks_on_resume(request, old)
    predictor = make_predictor(spec, **request.model_options)
    _set_threads(request.threads)
    batched = supports_batch(predictor)
    if request.batch_size > 1 and not batched:
        log.warning("model %s has no predict_batch(); evaluating one instance at a time", spec.name)
    model_record = _model_record(spec, request.model_options, predictor)
    device = model_device(predictor, model_record, request.model_options)
    manifest: dict[str, Any] = {
        "schema": SCHEMA,
        "command": list(request.command),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": "running",
        "versions": library_versions(),
        "model": {
            **model_record,
            "reference": request.reference,
        },
        "datasets": dataset_records,
        "protocol": settings.to_json(),
        "shard": request.shard.to_json() if request.shard else None,
        "engine": engine_layout(request, batched, device),
        "threads": request.threads,
        "save_masks": request.save_masks,
        "device": device_info(),
        "errors": [],
        "warnings": [],
    }
    _check_resumable(old, manifest, request.out)
    store = ResultStore(request.out)
    store.lock()
    try:
        return _evaluate(request, store, manifest, old, listings, predictor, click_model)
    finally:
        store.unlock()


def _masks_on_resume(request: RunRequest, old: dict[str, Any] | None) -> RunRequest:
    """A run saves masks for all of its entries or for none: a run started with
    `--save-masks` keeps saving them when resumed without it; asking for them on a run with
    entries already evaluated without them is refused (they would be missing from the report's
    panels while the run says it saved masks)."""
    if old is None or bool(old.get("save_masks")) == request.save_masks:
        return request
    if old.get("save_masks"):
        log.info("%s was started with --save-masks; the resumed run saves them too", request.out)
        return dataclasses.replace(request, save_masks=True)
    journal = request.out / JOURNAL
    done = journal.is_file() and journal.stat().st_size > 0
    if not done:
        return request
    raise RunMismatchError(
        f"--save-masks: {request.out} was started without it and holds entries evaluated "
        "without masks; use --overwrite to evaluate them again with masks, or another --out"
    )


def _read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    if not path.exists():
        return None
    import json

    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunMismatchError(
            f"{path}: not valid JSON ({exc}); use another --out, or --overwrite to start again"
        ) from None


def _evaluate(
    request: RunRequest,
    store: ResultStore,
    manifest: dict[str, Any],
    old: dict[str, Any] | None,
    listings: dict[str, tuple[Path, list[SampleRef]]],
    predictor: Any,
    click_model: Any,
) -> dict[str, Any]:
    if old is not None:
        manifest["created"] = old.get("created", manifest["created"])
        manifest["resumed"] = old.get("resumed", 0) + 1
    store.write_manifest(manifest)

    done = store.done()
    started = time.perf_counter()
    try:
        for name, (_, refs) in listings.items():
            todo = refs[: request.limit] if request.limit is not None else refs
            items = request.shard.select(todo) if request.shard else list(enumerate(todo))
            _run_dataset(
                name, items, done, predictor, click_model, store, request, manifest["engine"]
            )
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        manifest["errors"] = store.errors()
        store.write_manifest(manifest)
        raise
    except Exception as exc:  # e.g. a full disk: say so in the manifest if it can be written
        _record_stop(store, manifest, exc)
        raise

    try:
        frame = store.finalize()
    except Exception as exc:
        _record_stop(store, manifest, exc)
        raise
    errors = store.errors()
    instances = int(frame.groupby(["dataset", "sample_id"]).ngroups) if len(frame) else 0
    manifest["errors"] = errors
    manifest["warnings"] = store.warnings()
    # A shard may hold no entry at all (more shards than entries): that piece is complete.
    empty_shard = request.shard is not None and not instances and not errors
    manifest["status"] = "complete" if empty_shard else run_status(instances, len(errors))
    manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest["wall_s_last_session"] = round(time.perf_counter() - started, 3)
    manifest["instances"] = instances
    manifest["skipped"] = len(errors)
    store.write_manifest(manifest)
    return manifest


def _record_stop(store: ResultStore, manifest: dict[str, Any], exc: Exception) -> None:
    """Mark a run stopped by an error as interrupted (resumable, never "complete"); best
    effort, since the error may be the very disk the manifest lives on."""
    manifest["status"] = "interrupted"
    manifest["stopped_by"] = f"{type(exc).__name__}: {exc}"
    try:
        store.write_manifest(manifest)
    except Exception:  # noqa: BLE001 - the original error is the one to report
        log.debug("could not record the stop in the manifest", exc_info=True)


def _run_dataset(
    name: str,
    items: list[tuple[int, SampleRef]],
    done: set[tuple[str, str]],
    predictor: Any,
    click_model: Any,
    store: ResultStore,
    request: RunRequest,
    engine: dict[str, Any],
) -> None:
    todo = [(i, ref) for i, ref in items if (name, ref.id) not in done]
    bar = tqdm(
        total=len(items),
        initial=len(items) - len(todo),
        desc=name,
        unit="img",
        disable=not request.progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    clicks = 0
    tic = time.perf_counter()

    def on_instance(record: InstanceRecord, masks: list[np.ndarray]) -> None:
        nonlocal clicks
        clicks += len(record.ious)
        rate = clicks / max(time.perf_counter() - tic, 1e-9)
        bar.set_postfix_str(f"{rate:.1f} clicks/s", refresh=False)
        if masks:
            save_masks(store.run_dir, name, record.sample_id.replace("/", "_"), masks)

    def on_entry(entry: EntryRecord) -> None:
        for err in entry.errors:
            log.error("%s: skipped %s: %s: %s", name, entry.ref_id, err["path"], err["problem"])
            if "traceback" in err:
                log.error("%s", err["traceback"])
        for warning in entry.warnings:
            log.warning("%s: %s: %s: %s", name, entry.ref_id, warning["path"], warning["problem"])
        store.append(entry)
        bar.update(1)

    try:
        evaluate_dataset(
            predictor,
            name,
            todo,
            request.settings,
            click_model,
            on_entry,
            batch_size=request.batch_size,
            on_instance=on_instance,
            keep_masks=request.save_masks,
            harness_threads=engine["harness_threads"],
            pipeline=engine["pipeline"],
            tracebacks=request.traceback,
        )
    finally:
        bar.close()
