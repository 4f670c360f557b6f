"""What a run's manifest says about the run: which fields make two runs the same run, and the
status words. Shared by resume (`bench.engine.run`) and `bench merge`, so both agree."""

from __future__ import annotations

from typing import Any


def identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """The parts of a manifest that must agree for a run to be resumed or merged."""
    model = manifest["model"]
    return {
        "model": {
            k: model.get(k) for k in ("name", "options", "checkpoint_sha256", "plugin_sha256")
        },
        "datasets": {
            name: {k: d.get(k) for k in ("fingerprint", "limit")}
            for name, d in manifest["datasets"].items()
        },
        "protocol": manifest["protocol"],
    }


def identity_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Dotted names of the identity fields in which two manifests differ (empty: same run)."""
    out: list[str] = []

    def walk(x: Any, y: Any, path: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y), key=str):
                walk(x.get(key), y.get(key), f"{path}.{key}" if path else str(key))
        elif x != y:
            out.append(path)

    walk(identity(a), identity(b), "")
    return out


def run_status(instances: int, errors: int) -> str:
    """'complete', 'complete with N errors', or 'failed' (no instance was evaluated: every
    sample failed, or there was none to evaluate)."""
    if not instances:
        return "failed"
    if errors:
        return f"complete with {errors} error{'s' if errors != 1 else ''}"
    return "complete"


def status_is_complete(status: str | None) -> bool:
    return bool(status) and str(status).startswith("complete")
