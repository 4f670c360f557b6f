"""Peak memory of a piece of work, measured the way each device allows.

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (SimpleClick's
  ``scripts/evaluate_model.py`` ends with commented-out prints of the CUDA allocator's
  counters, PROTOCOL.md section 9). Memory already allocated when the peak is reset (the
  weights) is part of the peak.
* CPU: the increase of the process's peak resident set size during the work over its
  resident size before the preparation (building the network), so weights count on both
  devices. Linux lets a process reset its high-water mark (``VmHWM``) by writing
  ``5`` to ``/proc/self/clear_refs``; elsewhere the lifetime ``ru_maxrss`` is the only peak,
  which hides any work smaller than an earlier peak and leaves the weights out, so that
  result is labelled differently.
  RSS counts pages, not tensors: allocator caches and libraries loaded during the work are
  included, and repeated runs of the same forward pass differ by up to about a third (HRNet-18s
  at 400: 103 to 143 MiB in fresh processes on 2 cores), so CPU figures are coarse.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

T = TypeVar("T")

CUDA_KIND = "cuda_max_memory_allocated"
CPU_KIND = "cpu_peak_rss_increase"
CPU_LIFETIME_KIND = "cpu_maxrss_increase_lower_bound"

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class PeakMemory:
    mib: float
    kind: str  # which counter: CUDA_KIND, CPU_KIND or CPU_LIFETIME_KIND


def measure_peak_memory(
    prepare: Callable[[], T], run: Callable[[T], object], device: torch.device | str
) -> tuple[T, PeakMemory]:
    """Peak memory of `run(prepare())`, counting what `prepare` leaves resident but not the
    transient peak of `prepare` itself (e.g. a float32 copy while casting weights).

    Returns what `prepare` made (the network, kept for later use) and the peak.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return _cuda_peak(prepare, run, device)
    return _cpu_peak(prepare, run)


def _cuda_peak(
    prepare: Callable[[], T], run: Callable[[T], object], device: torch.device
) -> tuple[T, PeakMemory]:
    prepared = prepare()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)  # the peak restarts at what is allocated now
    run(prepared)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return prepared, PeakMemory(peak / 2**20, CUDA_KIND)


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS so that the baseline RSS holds live data only."""
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_high_water_mark() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _maxrss_kib() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss  # bytes on macOS, KiB elsewhere


def _cpu_peak(prepare: Callable[[], T], run: Callable[[T], object]) -> tuple[T, PeakMemory]:
    _release_free_memory()
    baseline = _status_kib("VmRSS")
    prepared = prepare()
    _release_free_memory()
    if baseline is not None and _reset_high_water_mark():
        run(prepared)
        peak = _status_kib("VmHWM")
        mib = float("nan") if peak is None else max(peak - baseline, 0) / 1024
        return prepared, PeakMemory(mib, CPU_KIND)
    before = _maxrss_kib()
    run(prepared)
    return prepared, PeakMemory(max(_maxrss_kib() - before, 0) / 1024, CPU_LIFETIME_KIND)
