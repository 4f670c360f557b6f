"""What the boundary IoU column costs: harness time per click with and without `biou`, as a
share of model time, for an xTiny-sized model (SimpleClick ViT-xTiny, official-format random
weights of `golden/equivalence/`) on DAVIS, in one process and one run of this script.

Two `bench run`s of the same instances, `biou` on and off (`ProtocolSettings.boundary_iou`),
alternating `--rounds` times so that machine load hits both alike; the figures are the
per-click `model_s` / `harness_s` columns the runs store. The boundary IoU's own cost is also
timed directly on the saved predictions of the first run (the harness difference is small
against the noise of a loaded machine).

    python benchmarks/bench_biou.py [--limit 2] [--max-clicks 5] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import protocol
from bench.datasets import list_samples
from bench.engine.instance import ProtocolSettings
from bench.engine.run import RunRequest, run
from bench.store import load_masks, read_trajectories

MODEL = "simpleclick-vit-xt"
CHECKPOINT = "simpleclick_vit_xtiny448_random.pth"


def one_run(args: argparse.Namespace, out: Path, biou: bool) -> tuple[float, float, int]:
    request = RunRequest(
        model=MODEL,
        datasets=(args.dataset,),
        out=out,
        model_options={"checkpoint": str(args.shared / "golden/equivalence" / CHECKPOINT)},
        data_root=args.shared / "datasets",
        settings=ProtocolSettings(max_clicks=args.max_clicks, boundary_iou=biou),
        limit=args.limit,
        threads=args.threads,
        progress=False,
        save_masks=biou,
    )
    run(request)
    frame = read_trajectories(out)
    model = frame["model_s"].sum() + frame["start_s"].sum()
    return float(model), float(frame["harness_s"].sum()), len(frame)


def direct_biou_seconds(args: argparse.Namespace, out: Path) -> tuple[float, int]:
    """Time `boundary_iou_from_target` on every saved prediction (the GT band once per
    instance, as the engine prepares it)."""
    total, clicks = 0.0, 0
    for ref in list_samples(args.dataset, args.shared / "datasets")[: args.limit]:
        for sample in ref.load():
            path = out / "masks" / args.dataset / f"{sample.id.replace('/', '_')}.npz"
            masks = load_masks(path)
            tic = time.perf_counter()
            target = protocol.BoundaryTarget.from_gt(sample.gt)
            for mask in masks:
                protocol.boundary_iou_from_target(target, mask)
            total += time.perf_counter() - tic
            clicks += len(masks)
    return total, clicks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ISEG_BENCH_SHARED", "../shared"))
    )
    parser.add_argument("--dataset", default="davis")
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--max-clicks", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sums = {True: np.zeros(3), False: np.zeros(3)}
    direct = np.zeros(2)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for biou in (True, False) if r % 2 == 0 else (False, True):
                out = Path(tmp) / f"run-{r}-{int(biou)}"
                sums[biou] += one_run(args, out, biou)
                if biou:
                    direct += direct_biou_seconds(args, out)
    print(
        f"{MODEL} on {args.dataset}: {args.limit} instances x {args.max_clicks} clicks, "
        f"{args.rounds} rounds, {args.threads} threads"
    )
    for biou in (True, False):
        model, harness, n = sums[biou]
        print(
            f"  biou {'on ' if biou else 'off'}: model {model / n * 1e3:8.2f} ms/click  "
            f"harness {harness / n * 1e3:6.2f} ms/click  "
            f"harness/model {100 * harness / model:5.2f} %"
        )
    on, off = sums[True], sums[False]
    print(
        f"  harness share with / without biou: {on[1] / on[0]:.4f} / {off[1] / off[0]:.4f} "
        f"= {(on[1] / on[0]) / (off[1] / off[0]):.2f}x"
    )
    seconds, clicks = direct
    print(
        f"  boundary IoU alone: {seconds / clicks * 1e3:.3f} ms/click = "
        f"{100 * (seconds / clicks) / (on[0] / on[2]):.3f} % of model time"
    )


if __name__ == "__main__":
    main()
