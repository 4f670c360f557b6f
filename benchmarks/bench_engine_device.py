"""What the engine itself allows on a fast device: instances/s with a *simulated* network.

On a GPU the network is so fast that the CPU work around it (the click rule's distance
transform, binarising and scoring, handing maps back) sets the speed, which the CPU benchmark
(`bench_engine.py`, where the network keeps every core busy) cannot show. Here the network is a
stand-in whose call costs `--call-ms + --per-instance-ms x instances` of *device* time: the
calling thread sleeps, holding neither a core nor the GIL, as a thread waiting for a GPU does.
Everything else is real: the engine (continuous batching, prefetch, store), DAVIS images and
masks, the official click rule and scoring. Each map it returns is built on the host (disks of
radius 40 around the positive clicks, full image size, float32), standing in for the copy
back from the device.

Rows: batch size and layout (one cohort, synchronous: propose, call, score; or pipelined: two
cohorts, one in the network while the other is scored), inst/s, x b1 (over batch 1 one cohort,
the official loop's shape), device%: share of wall time the simulated device is busy.

The default cost (6 ms a call + 0.8 ms an instance) is an assumption for ViT-B 448 bf16 on a
current datacentre GPU: a batch-1 call bound by launching ~300 kernels, ~320 GFLOP per instance
(image and flip) at ~400 TFLOP/s. It is not a measurement: `gpu_engine.sh` measures the real
network. What this table does show is whether the engine would keep such a device fed.

    python benchmarks/bench_engine_device.py [--call-ms 6 --per-instance-ms 0.8]
        [--instances 32 --max-clicks 5 --batch-sizes 1,4,8,16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.adapters import ModelSpec, register_model
from bench.engine.instance import ProtocolSettings
from bench.engine.run import RunRequest, run
from bench.store import PROTOCOL_COLUMNS, read_trajectories


class SimulatedDevice:
    """A batched predictor whose network is device time only (see the module docstring)."""

    def __init__(self, call_ms: float, per_instance_ms: float) -> None:
        self.call_s = call_ms / 1000
        self.per_instance_s = per_instance_ms / 1000
        self.busy_s = 0.0  # the engine makes every predictor call from one thread
        self._shape: tuple[int, int] | None = None

    def start(self, sample: Any) -> None:  # the one-instance interface every predictor has
        self._shape = self.open_instance(sample)

    def predict(self, clicks: list[Any]) -> Any:
        assert self._shape is not None, "predict() before start()"
        return self.predict_batch([(self._shape, clicks)])[0]

    def open_instance(self, sample: Any) -> tuple[int, int]:
        return sample.image.shape[:2]

    def predict_batch(self, requests: list[tuple[tuple[int, int], list[Any]]]) -> list[Any]:
        cost = self.call_s + self.per_instance_s * len(requests)
        time.sleep(cost)
        self.busy_s += cost
        out = []
        for shape, clicks in requests:
            mask = np.zeros(shape, np.uint8)
            for click in clicks:
                if click.positive:
                    cv2.circle(mask, (int(click.x), int(click.y)), 40, 1, -1)
            out.append(mask.astype(np.float32))
        return out


def main() -> None:
    shared = Path(os.environ.get("ISEG_BENCH_SHARED", Path(__file__).parents[2] / "shared"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--call-ms", type=float, default=6.0)
    parser.add_argument("--per-instance-ms", type=float, default=0.8)
    parser.add_argument("--dataset", default="davis")
    parser.add_argument("--data-root", type=Path, default=shared / "datasets")
    parser.add_argument("--instances", type=int, default=32, help="first N entries")
    parser.add_argument("--max-clicks", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--harness-threads", type=int, default=None, help="default: auto")
    args = parser.parse_args()

    device = SimulatedDevice(args.call_ms, args.per_instance_ms)
    register_model(ModelSpec("simulated-device", factory=lambda **_: device, family="benchmark"))
    print(
        f"{args.dataset}: first {args.instances} entries, {args.max_clicks} clicks each; "
        f"simulated device {args.call_ms:g} ms a call + {args.per_instance_ms:g} ms an instance; "
        f"CPUs {os.cpu_count()}"
    )
    print(f"{'batch':>5s} {'layout':10s} {'inst/s':>8s} {'x b1':>6s} {'device%':>8s}  same as b1")
    base_rate, reference = None, None
    with tempfile.TemporaryDirectory() as tmp:
        layouts = [(1, False)] + [
            (b, p) for b in (int(x) for x in args.batch_sizes.split(",")) if b > 1
            for p in (False, True)
        ]  # fmt: skip
        for number, (batch, pipeline) in enumerate(layouts):
            out = Path(tmp) / f"run{number}"
            request = RunRequest(
                model="simulated-device",
                datasets=(args.dataset,),
                out=out,
                model_options={},
                data_root=args.data_root,
                settings=ProtocolSettings(max_clicks=args.max_clicks),
                limit=args.instances,
                progress=False,
                batch_size=batch,
                harness_threads=args.harness_threads,
                pipeline=pipeline,
            )
            device.busy_s = 0.0
            tic = time.perf_counter()
            manifest = run(request)
            wall = time.perf_counter() - tic
            frame = read_trajectories(out)[PROTOCOL_COLUMNS].reset_index(drop=True)
            rate = frame.groupby(["dataset", "sample_id"]).ngroups / wall
            if base_rate is None:
                base_rate, reference = rate, frame
            layout = "pipelined" if pipeline else "one cohort"
            same = "yes" if reference.equals(frame) else "NO"
            print(
                f"{batch:5d} {layout:10s} {rate:8.2f} {rate / base_rate:6.2f} "
                f"{100 * device.busy_s / wall:7.1f}%  {same}  "
                f"(harness threads {manifest['engine']['harness_threads']})",
                flush=True,
            )


if __name__ == "__main__":
    main()
