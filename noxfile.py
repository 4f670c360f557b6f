"""Developer sessions. They run in the current environment (no new virtualenv), so that the
CPU build of torch installed by the README's set-up command is the one used."""

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
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
