"""`bench` with a pause at a chosen point of a run's end, so a test can SIGKILL it there.

    python tests/plugins/pausing_bench.py POINT MARKER run ...bench run arguments...

POINT is `parquet` (while trajectories.parquet is written: half of the file is on disk) or
`final_manifest` (every entry journaled and trajectories.parquet written, but the manifest
still says "running"). At the point the process writes MARKER and sleeps; the test then kills
it. Only this test helper patches the product code; `bench run` itself has no hook.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from bench.cli import main
from bench.store import ResultStore

POINT, MARKER = sys.argv[1], Path(sys.argv[2])


def _pause() -> None:
    MARKER.write_text("paused\n")
    time.sleep(300)


if POINT == "parquet":
    real_to_parquet = pd.DataFrame.to_parquet

    def half_written(self, path, *args, **kwargs):
        real_to_parquet(self, path, *args, **kwargs)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        _pause()

    pd.DataFrame.to_parquet = half_written
elif POINT == "final_manifest":
    real_write = ResultStore.write_manifest

    def before_complete(self, manifest):
        if str(manifest.get("status", "")).startswith("complete"):
            _pause()
        real_write(self, manifest)

    ResultStore.write_manifest = before_complete
else:
    raise SystemExit(f"unknown pause point {POINT!r}")

sys.argv = ["bench", *sys.argv[3:]]
main()
