"""Developer sessions. They run in the current environment (no new virtualenv), so that the
CPU build of torch installed by the README's set-up command is the one used."""

import os

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    # Fails if the environment lost its CPU torch (nvidia-* beside it, broken torchvision);
    # ISEG_BENCH_TORCH=2.13.0 also pins the version, as .ci/run does.
    expect = os.environ.get("ISEG_BENCH_TORCH")
    session.run("python", "tools/check_torch.py", *(["--expect", expect] if expect else []))
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def demo(session: nox.Session) -> None:
    session.run(
        "bench",
        "run",
        "--model",
        "grabcut-opencv",
        "--datasets",
        "demo",
        "--out",
        "runs/demo",
        "--overwrite",
    )


@nox.session
def benchmarks(session: nox.Session) -> None:
    session.run("python", "benchmarks/bench_clicker.py", *session.posargs)


@nox.session
def engine_benchmark(session: nox.Session) -> None:
    """Batched engine: instances/s at batch 1/4/8/16 (issue 11); options go to the script,
    e.g. `nox -s engine_benchmark -- --max-clicks 5`."""
    session.run("python", "benchmarks/bench_engine.py", *session.posargs)


@nox.session
def engine_device_benchmark(session: nox.Session) -> None:
    """The engine on a simulated fast device (what it allows when the network is a GPU's):
    one cohort against pipelined cohorts, e.g. `-- --call-ms 6 --per-instance-ms 0.8`."""
    session.run("python", "benchmarks/bench_engine_device.py", *session.posargs)
