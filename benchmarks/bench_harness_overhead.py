"""Harness time as a share of model time in real adapter runs (target: under 2 %).

Runs `bench run` in-process with the official-format random-weight checkpoints of
`golden/equivalence/` (same architecture and cost as released weights) on real GrabCut
images, then reads the per-click `model_s` / `harness_s` columns the run stores. Harness
time covers the click rule, binarisation, IoU, bookkeeping and image decoding; model time
is everything inside `predictor.start` / `predictor.predict`.

    python benchmarks/bench_harness_overhead.py [--limit 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench.engine.instance import ProtocolSettings
from bench.engine.run import RunRequest, run
from bench.store import read_trajectories

MODELS = {
    "ritm-hrnet18s": "ritm_hrnet18s_random.pth",
    "simpleclick-vit-xt": "simpleclick_vit_xtiny448_random.pth",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    shared = Path(os.environ.get("ISEG_BENCH_SHARED", "../shared"))
    parser.add_argument("--shared", type=Path, default=shared)
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for model, checkpoint in MODELS.items():
        with tempfile.TemporaryDirectory() as tmp:
            request = RunRequest(
                model=model,
                datasets=("grabcut",),
                out=Path(tmp) / "run",
                model_options={"checkpoint": str(args.shared / "golden/equivalence" / checkpoint)},
                data_root=args.shared / "datasets",
                settings=ProtocolSettings(),
                limit=args.limit,
                threads=args.threads,
                progress=False,
            )
            run(request)
            frame = read_trajectories(request.out)
        model_s, harness_s, n = frame["model_s"].sum(), frame["harness_s"].sum(), len(frame)
        print(
            f"{model:20s} clicks {n:4d}  model {model_s / n * 1e3:8.1f} ms/click  "
            f"harness {harness_s / n * 1e3:6.2f} ms/click  "
            f"harness/model {100 * harness_s / model_s:5.2f} %"
        )


if __name__ == "__main__":
    main()
