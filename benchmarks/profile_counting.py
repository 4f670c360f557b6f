"""Cost of counting parameters and FLOPs on the meta device against a real CPU network.

`bench profile` counts on the meta device (shapes only). This measures what that saves and
checks that both paths give identical counts (thop MACs and params, FlopCounterMode flops):

    python benchmarks/profile_counting.py [--models simpleclick-vit-h,ritm-hrnet32] [--no-cpu]
"""

from __future__ import annotations

import argparse
import time

from bench import profile
from bench.profile import memory as profile_memory
from bench.profile.counts import count_full_flops, count_paper_flops, count_parameters


def count_on(target: profile.ProfileTarget, size: int, device: str):
    """(counts, seconds to build, seconds for thop, seconds for FlopCounterMode, peak MiB)."""
    timings = {}

    def prepare():
        tic = time.perf_counter()
        network = profile.build_network(target, size, device)
        timings["build"] = time.perf_counter() - tic
        return network

    def run(network):
        tic = time.perf_counter()
        timings["paper"] = count_paper_flops(network, size)
        timings["thop_s"] = time.perf_counter() - tic
        tic = time.perf_counter()
        timings["full"] = count_full_flops(network, size)[0]
        timings["full_s"] = time.perf_counter() - tic

    network, peak = profile_memory.measure_peak_memory(prepare, run, "cpu")
    counts = (count_parameters(network).total, timings["paper"], timings["full"])
    return counts, timings["build"], timings["thop_s"], timings["full_s"], peak.mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(profile.TARGETS))
    parser.add_argument("--no-cpu", action="store_true", help="meta device only")
    args = parser.parse_args()
    devices = ["meta"] if args.no_cpu else ["meta", "cpu"]
    print(f"{'model':22s} {'S':>4s} {'device':6s} {'build s':>8s} {'thop s':>7s} "
          f"{'full s':>7s} {'peak MiB':>9s}  GFLOPs paper / full")  # fmt: skip
    for name in args.models.split(","):
        target = profile.resolve_target(name.strip())
        results = {}
        for device in devices:
            counts, build_s, thop_s, full_s, mib = count_on(target, target.size, device)
            results[device] = counts
            print(
                f"{target.name:22s} {target.size:4d} {device:6s} {build_s:8.2f} {thop_s:7.2f} "
                f"{full_s:7.2f} {mib:9.0f}  {counts[1].gflops:.2f} / {counts[2] / 1e9:.2f}",
                flush=True,
            )
        if len(results) == 2 and results["meta"] != results["cpu"]:
            raise SystemExit(f"{name}: meta and CPU counts differ: {results}")


if __name__ == "__main__":
    main()
