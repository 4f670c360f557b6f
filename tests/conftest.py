"""Shared test fixtures: where the golden reference data and the real datasets live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_root() -> Path:
    env = os.environ.get("ISEG_BENCH_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    root = shared_root()
    if not (root / "golden").is_dir():
        pytest.fail(f"shared reference data not found at {root} (set ISEG_BENCH_SHARED)")
    return root


@pytest.fixture(scope="session")
def golden(shared: Path) -> Path:
    return shared / "golden"


@pytest.fixture(scope="session")
def data_root(shared: Path) -> Path:
    return shared / "datasets"
