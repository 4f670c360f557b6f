"""Check that installing iseg-bench kept the torch that was installed first.

Why: with no care, `pip install -e .` can replace a CPU torch with the newest CUDA build and
pull a dozen `nvidia-*` wheels (several GB). That happened through timm -> torchvision: the
newest torchvision pins the newest torch, and PyPI's Linux torchvision wheels are CUDA builds
that do not import beside a CPU torch ("operator torchvision::nms does not exist"). The
project therefore depends on neither timm nor torchvision (see README, Set-up). `.ci/run` and
`nox -s tests` call this script so that such a change fails loudly instead of passing on a
machine that happens to have the CUDA stack already.

    python tools/check_torch.py                 # print torch's version, check the environment
    python tools/check_torch.py --expect 2.13.0  # ... and require that version (the one
                                                 #     installed first; a local label such as
                                                 #     +cpu may follow it)

Exit status 1 with one line per problem, 0 with one summary line. Reads package metadata
only (torch is not imported), except that an installed torchvision is imported in a
subprocess to see whether it works.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class TorchEnvironment:
    torch_version: str | None
    torch_is_cuda_build: bool  # torch's wheel declares nvidia-* dependencies
    nvidia_packages: tuple[str, ...]  # "name==version", sorted
    torchvision_version: str | None


def _name(dist: metadata.Distribution) -> str:
    return (dist.metadata["Name"] or "").lower()


def _version_or_none(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def read_environment() -> TorchEnvironment:
    nvidia = sorted(
        {
            f"{_name(d)}=={d.version}"
            for d in metadata.distributions()
            if _name(d).startswith("nvidia-")
        }
    )
    torch_version = _version_or_none("torch")
    requires = (metadata.requires("torch") or []) if torch_version else []
    cuda_build = any(re.match(r"nvidia[-_]", r.lower()) for r in requires)
    return TorchEnvironment(
        torch_version, cuda_build, tuple(nvidia), _version_or_none("torchvision")
    )


def version_matches(found: str, expected: str) -> bool:
    """`2.13.0+cpu` matches `2.13.0` and `2.13.0+cpu`; `2.14.1` does not match `2.13.0`."""
    return found == expected or found.split("+", 1)[0] == expected


def torchvision_import_error() -> str | None:
    """None if `import torchvision` works beside this torch, else the last line of its error."""
    result = subprocess.run(
        [sys.executable, "-c", "import torchvision"], capture_output=True, text=True, timeout=300
    )
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {result.returncode}"


def problems(env: TorchEnvironment, expected: str | None) -> list[str]:
    found = []
    if env.torch_version is None:
        return ["torch is not installed: install it first (README, Set-up)"]
    if expected and not version_matches(env.torch_version, expected):
        found.append(
            f"torch is {env.torch_version}, expected {expected} (the build installed first): "
            "an install step replaced it"
        )
    if env.nvidia_packages and not env.torch_is_cuda_build:
        shown = ", ".join(env.nvidia_packages[:6])
        more = f" and {len(env.nvidia_packages) - 6} more" if len(env.nvidia_packages) > 6 else ""
        found.append(
            f"{len(env.nvidia_packages)} nvidia-* package(s) installed beside a CPU torch "
            f"({shown}{more}): something pulled the CUDA stack"
        )
    if env.torchvision_version is not None:
        error = torchvision_import_error()
        if error is not None:
            found.append(
                f"torchvision {env.torchvision_version} is installed but does not import beside "
                f"torch {env.torch_version} ({error}); iseg-bench does not need torchvision: "
                "`pip uninstall torchvision`"
            )
    return found


def summary(env: TorchEnvironment) -> str:
    build = "CUDA build" if env.torch_is_cuda_build else "CPU build"
    nvidia = (
        f"{len(env.nvidia_packages)} nvidia-* package(s)" if env.nvidia_packages else "no nvidia-*"
    )
    vision = (
        f"torchvision {env.torchvision_version}" if env.torchvision_version else "no torchvision"
    )
    return f"torch {env.torch_version} ({build}); {nvidia}; {vision}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--expect", metavar="VERSION", help="torch version installed first, e.g. 2.13.0"
    )
    args = parser.parse_args(argv)
    env = read_environment()
    print(f"check_torch: {summary(env)}")
    found = problems(env, args.expect)
    for problem in found:
        print(f"check_torch: FAIL: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
