"""Instances per second of the batched engine at several batch sizes, in one process.

Drives the real engine (`bench.engine.run.run` with `RunRequest(batch_size=N)`, continuous
batching, prefetch, store and all) on a fixed set of instances: the first `--instances` entries
of `--dataset` (DAVIS by default) in listing order, `--max-clicks` clicks each (no early stop),
so every batch size does the same clicks. Batch 1 is the official loop's shape (one instance at
a time, one forward per click).

Columns, per model and batch size:
- inst/s, and x b1 = inst/s divided by batch 1's;
- net%: share of the run's wall time the network forward was busy. The predictor's
  `pipeline.forward` (the network call of `EvalPredictor`) is wrapped with a timer that counts
  the time at least one forward runs (on the CPU a few may run side by side); on CUDA it
  synchronises the device before and after, so the share is device-busy time;
- fwd: number of forward calls;
- pred%: share inside the predictor (`predict_batch` / `open_instance`: forward plus the
  per-instance zoom-in, flip and paste-back transforms), from the run's `model_s` + `start_s`;
- harness%: the engine's own per-click work (click rule, IoU, bookkeeping, decoding), from
  `harness_s`; the rest of the wall time is the store, the prefetch hand-off and Python;
- cpu/inst: process CPU seconds (all threads) per instance, a check on inst/s that depends less
  on other load on a shared machine (OpenMP spin-waiting counts as CPU time, though);
- cohorts: 2 when pipelined (`--pipeline`: one cohort in the network while the other is
  scored; pred% and harn% then overlap in time and may add up to more than 100 %);
- same: whether the run's protocol columns (clicks and IoUs) equal batch 1's exactly; if not,
  the largest IoU difference.

With `--repeat R` the batch sizes run R rounds, interleaved (1, 4, 8, 16, 1, 4, ...), so slow
phases of a shared machine hit every batch size alike; each row is then the median round.

Below the engine table, the *network ceiling*: the predictor's own batched call
(`run_forward_batch`, the exact path `predict_batch` takes: one forward per shape on a GPU,
single-threaded forwards side by side on the CPU) timed alone on the first real network input
of the batch-1 run, repeated for B instances, best of `--ceiling-repeat`. Its `x b1` is the
most any engine could gain from batching on this machine, because nothing but the network is
left to save once the harness is ~1 % (a CPU that is already busy at batch 1 shows ~1.0 there).

The model is built once (`make_predictor`) and reused by every run, so model loading is not
timed; a short warm-up run (2 instances, 2 clicks) comes first. Checkpoints default to the
random-weight official-format files in `golden/equivalence` (same architecture and cost as the
released weights).

    python benchmarks/bench_engine.py [--instances 16] [--max-clicks 3] [--batch-sizes 1,4,8,16]
    python benchmarks/bench_engine.py --models simpleclick-vit-b --checkpoint \
        simpleclick-vit-b=/tmp/vit_b.pth --device cuda --dtype bfloat16 \
        --model-option input_size=448
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench.adapters import MODELS, ModelSpec, make_predictor, register_model, resolve_model
from bench.engine.instance import ProtocolSettings
from bench.engine.run import RunRequest, run
from bench.store import PROTOCOL_COLUMNS, read_trajectories

GOLDEN_CHECKPOINTS = {
    "simpleclick-vit-xt": "simpleclick_vit_xtiny448_random.pth",
    "ritm-hrnet18s": "ritm_hrnet18s_random.pth",
}


class ForwardTimer:
    """Wraps a network call; `busy_s` accumulates the time at least one call is running.

    On the CPU the predictor may run a few forwards side by side (`cpu_parallel`), so the
    intervals are merged rather than summed: busy_s never exceeds the wall time.
    """

    def __init__(self, forward: Callable[..., Any], device: torch.device) -> None:
        self.forward = forward
        self.device = device
        self.busy_s = 0.0
        self.calls = 0
        self.first_args: tuple[Any, ...] | None = None
        self._running = 0
        self._since = 0.0
        self._lock = threading.Lock()

    def reset(self) -> None:
        self.busy_s, self.calls = 0.0, 0

    def __call__(self, *args: Any) -> Any:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
        with self._lock:
            if self._running == 0:
                self._since = time.perf_counter()
            self._running += 1
            self.calls += 1
            if self.first_args is None:
                self.first_args = args
        try:
            out = self.forward(*args)
            if cuda:
                torch.cuda.synchronize(self.device)
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    self.busy_s += time.perf_counter() - self._since
        return out


@dataclass(frozen=True)
class Result:
    batch: int
    instances: int
    clicks: int
    wall_s: float
    cpu_s: float
    forward_s: float | None
    forwards: int
    predictor_s: float
    harness_s: float
    pipelined: bool
    frame: pd.DataFrame


def parse_pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"{what} {value!r}: expected KEY=VALUE")
        pairs[key] = rest
    return pairs


def timed_model(name: str, options: dict[str, Any]) -> tuple[str, ForwardTimer | None, Any]:
    """Build the predictor once, time its network forward, and register it under a new name
    whose factory hands back that same object (so each run skips the model load)."""
    predictor = make_predictor(resolve_model(name), **options)
    timer = None
    pipeline = getattr(predictor, "pipeline", None)
    if pipeline is not None and hasattr(pipeline, "forward"):
        timer = ForwardTimer(pipeline.forward, torch.device(pipeline.device))
        pipeline.forward = timer
    timed_name = f"{name}+forward-timer"
    register_model(ModelSpec(timed_name, factory=lambda **_: predictor, family="benchmark"))
    return timed_name, timer, pipeline


def run_once(
    model: str,
    timer: ForwardTimer | None,
    options: dict[str, Any],
    args: argparse.Namespace,
    batch: int,
    instances: int,
    max_clicks: int,
    out: Path,
) -> Result:
    if timer is not None:
        timer.reset()
    request = RunRequest(
        model=model,
        datasets=(args.dataset,),
        out=out,
        model_options=options,
        data_root=args.data_root,
        settings=ProtocolSettings(max_clicks=max_clicks),
        limit=instances,
        threads=args.threads,
        progress=False,
        batch_size=batch,
        pipeline=False if batch == 1 else args.pipeline,  # batch 1: the official loop's shape
    )
    tic, cpu_tic = time.perf_counter(), time.process_time()
    manifest = run(request)
    wall, cpu = time.perf_counter() - tic, time.process_time() - cpu_tic
    if manifest.get("errors"):
        raise SystemExit(f"{model} batch {batch}: instances failed: {manifest['errors'][:3]}")
    frame = read_trajectories(out)
    start_s = frame["start_s"].sum() if "start_s" in frame else 0.0
    return Result(
        batch=batch,
        instances=int(frame.groupby(["dataset", "sample_id"]).ngroups),
        clicks=len(frame),
        wall_s=wall,
        cpu_s=cpu,
        forward_s=timer.busy_s if timer is not None else None,
        forwards=timer.calls if timer is not None else 0,
        predictor_s=float(frame["model_s"].sum() + start_s),
        harness_s=float(frame["harness_s"].sum()),
        pipelined=bool(manifest["engine"]["pipeline"]),
        frame=frame[PROTOCOL_COLUMNS].reset_index(drop=True),
    )


def same_as(reference: pd.DataFrame, frame: pd.DataFrame) -> str:
    if reference.equals(frame):
        return "yes"
    if len(reference) != len(frame):
        return f"no ({len(frame)} vs {len(reference)} rows)"
    return f"no (max IoU diff {(reference['iou'] - frame['iou']).abs().max():.2e})"


def median_round(rounds: list[Result]) -> Result:
    """The round with the median wall time (the lower middle one for an even count)."""
    ordered = sorted(rounds, key=lambda r: r.wall_s)
    return ordered[(len(ordered) - 1) // 2]


def network_ceiling(
    pipeline: Any, timer: ForwardTimer, batches: list[int], repeat: int
) -> list[tuple[int, float]]:
    """(B, network-only instances/s) of the predictor's batched call on B copies of the first
    real network input: best of `repeat` timed calls after one untimed call per B."""
    if timer.first_args is None:
        return []
    from bench.adapters.common.eval_predictor import NetInput

    x, points = timer.first_args[:2]
    one = NetInput(x=x, points=points, zoom=None, flipped=True)  # type: ignore[arg-type]
    forward, pipeline.forward = pipeline.forward, timer.forward  # untimed raw forward
    cuda = pipeline.device.type == "cuda"
    rates = []
    try:
        for batch in batches:
            inputs = [one] * batch
            pipeline.run_forward_batch(inputs)
            best = float("inf")
            for _ in range(repeat):
                if cuda:
                    torch.cuda.synchronize(pipeline.device)
                tic = time.perf_counter()
                pipeline.run_forward_batch(inputs)
                if cuda:
                    torch.cuda.synchronize(pipeline.device)
                best = min(best, time.perf_counter() - tic)
            rates.append((batch, batch / best))
    finally:
        pipeline.forward = forward
    return rates


def main() -> None:
    shared = Path(os.environ.get("ISEG_BENCH_SHARED", Path(__file__).parents[2] / "shared"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="simpleclick-vit-xt,ritm-hrnet18s")
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="MODEL=PATH",
        help="checkpoint per model (default: golden/equivalence random-weight files)",
    )
    parser.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--dataset", default="davis")
    parser.add_argument("--data-root", type=Path, default=shared / "datasets")
    parser.add_argument("--instances", type=int, default=16, help="first N entries")
    parser.add_argument("--max-clicks", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds (median)")
    parser.add_argument(
        "--ceiling-repeat", type=int, default=3, help="timed calls per B (0: no ceiling table)"
    )
    parser.add_argument(
        "--pipeline",
        choices=("auto", "on", "off"),
        default="auto",
        help="two cohorts at batch > 1 (auto: on with CUDA, as bench run); batch 1 never",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=None, help="torch/OpenCV threads")
    args = parser.parse_args()
    args.pipeline = {"auto": None, "on": True, "off": False}[args.pipeline]
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")

    checkpoints = parse_pairs(args.checkpoint, "--checkpoint")
    extra = parse_pairs(args.model_option, "--model-option")
    batches = [int(b) for b in args.batch_sizes.split(",")]
    print(
        f"{args.dataset}: first {args.instances} entries, {args.max_clicks} clicks each, "
        f"device {args.device}, dtype {args.dtype}, torch threads "
        f"{args.threads or torch.get_num_threads()}, CPUs {os.cpu_count()}, "
        f"{args.repeat} round(s)" + (" (median shown)" if args.repeat > 1 else "")
    )
    header = (
        f"{'model':20s} {'batch':>5s} {'cohorts':>7s} {'inst/s':>8s} {'x b1':>6s} {'net%':>6s} "
        f"{'pred%':>6s} {'harn%':>6s} {'fwd':>5s} {'wall s':>7s} {'cpu/inst':>8s}  same as b1"
    )
    for name in args.models.split(","):
        checkpoint = checkpoints.get(name)
        if checkpoint is None and name in GOLDEN_CHECKPOINTS:
            checkpoint = str(shared / "golden" / "equivalence" / GOLDEN_CHECKPOINTS[name])
        options: dict[str, Any] = {"device": args.device, "dtype": args.dtype, **extra}
        if checkpoint is not None:
            options["checkpoint"] = checkpoint
        if MODELS.get(name) is not None and MODELS[name].family == "classical":
            options = {k: v for k, v in options.items() if k not in ("dtype", "checkpoint")}
        model, timer, pipeline = timed_model(name, options)
        print(header)
        with tempfile.TemporaryDirectory() as tmp:
            warm = (min(2, args.instances), min(2, args.max_clicks))
            run_once(model, timer, options, args, 1, *warm, Path(tmp) / "warmup")
            rounds: dict[int, list[Result]] = {batch: [] for batch in batches}
            for round_number in range(args.repeat):
                for number, batch in enumerate(batches):
                    out = Path(tmp) / f"round{round_number}-run{number}-b{batch}"
                    rounds[batch].append(
                        run_once(
                            model,
                            timer,
                            options,
                            args,
                            batch,
                            args.instances,
                            args.max_clicks,
                            out,
                        )  # fmt: skip
                    )
                    shutil.rmtree(out)
            results = [median_round(rounds[batch]) for batch in batches]
            base = results[0].instances / results[0].wall_s
            for r in results:
                rate = r.instances / r.wall_s
                net = f"{100 * r.forward_s / r.wall_s:5.1f}%" if r.forward_s is not None else "-"
                print(
                    f"{name:20s} {r.batch:5d} {2 if r.pipelined else 1:7d} {rate:8.3f} "
                    f"{rate / base:6.2f} {net:>6s} "
                    f"{100 * r.predictor_s / r.wall_s:5.1f}% {100 * r.harness_s / r.wall_s:5.1f}% "
                    f"{r.forwards:5d} {r.wall_s:7.1f} {r.cpu_s / r.instances:8.2f}  "
                    f"{same_as(results[0].frame, r.frame)}",
                    flush=True,
                )
        if timer is not None and pipeline is not None and args.ceiling_repeat > 0:
            rates = network_ceiling(pipeline, timer, batches, args.ceiling_repeat)
            if rates:
                shape = "x".join(str(d) for d in timer.first_args[0].shape)  # type: ignore[index]
                print(
                    f"{name}: network ceiling (the batched network call alone, input {shape} "
                    "per instance): batch, inst/s, x b1"
                )
                for batch, rate in rates:
                    print(f"{'':20s} {batch:5d} {rate:8.3f} {rate / rates[0][1]:6.2f}", flush=True)


if __name__ == "__main__":
    main()
