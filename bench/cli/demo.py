"""`bench demo`: a person clicks in the browser, a registered model (or a plugin) segments.

Like the official codebases' Tkinter `demo.py` (RITM, SimpleClick), but a web page, so it
also works on a remote GPU machine through an SSH tunnel. It listens on 127.0.0.1 unless
`--host` says otherwise (with a warning: the page has no authentication). `--record FILE`
appends every click to a JSONL file that `bench run --click-model replay:FILE` plays back.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

import click

from bench.cli.model_options import data_root_option, factory_options, model_options

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _split(values: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in values.split(",") if v.strip())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before the URL is printed (so it is the real port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@click.command("demo")
@click.option(
    "--model",
    default="grabcut-opencv",
    show_default=True,
    help="Registered name, pkg.mod:factory or file.py:factory.",
)
@model_options
@click.option(
    "--datasets",
    help="Comma-separated registered datasets (ground truth known: IoU shown). "
    "Default: demo, unless --images is given.",
)
@data_root_option
@click.option(
    "--images",
    type=click.Path(path_type=Path, file_okay=False),
    help="A folder of your own images (no ground truth), shown after the datasets.",
)
@click.option(
    "--record",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Append every click, undo and reset to this JSONL file (for --click-model replay:).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8765, show_default=True, help="0 picks a free port.")
def demo_command(**kw: Any) -> None:
    """Interactive segmentation in the browser; optionally record the clicks for replay."""
    import uvicorn

    from bench.adapters import make_predictor, resolve_model
    from bench.web.app import create_app
    from bench.web.catalog import Catalog, dataset_entries, folder_entries
    from bench.web.recording import Recorder, RecordingError
    from bench.web.session import ModelSession

    options = factory_options(kw)

    datasets = _split(kw["datasets"]) if kw["datasets"] else ()
    if not datasets and kw["images"] is None:
        datasets = ("demo",)
    try:
        entries = dataset_entries(datasets, kw["data_root"])
        if kw["images"] is not None:
            entries += folder_entries(kw["images"])
        catalog = Catalog(entries)
        spec = resolve_model(kw["model"])
    except (KeyError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from exc

    host = kw["host"]
    if not _is_loopback(host):
        click.echo(
            f"WARNING: --host {host} exposes the demo to other machines; it has no "
            "authentication, and anyone who reaches it can run the model and add to the "
            "recording. Prefer an SSH tunnel to 127.0.0.1.",
            err=True,
        )
    sock = _bind(host, kw["port"])
    click.echo(f"loading model {spec.name} ...", err=True)
    try:
        predictor = make_predictor(spec, **options)
        recorder = Recorder(kw["record"], spec.name) if kw["record"] is not None else None
    except (FileNotFoundError, ValueError, TypeError, RecordingError, OSError) as exc:
        sock.close()
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:
        sock.close()
        if type(exc).__name__ == "CheckpointError":  # no torch import just to name the class
            raise click.ClickException(str(exc)) from exc
        raise

    port = sock.getsockname()[1]
    allowed = (*LOOPBACK_HOSTS, host) if _is_loopback(host) else None
    app = create_app(catalog, ModelSession(predictor, spec.name), recorder, allowed_hosts=allowed)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]") else host
    shown = f"[{shown.strip('[]')}]" if ":" in shown else shown
    click.echo(f"iseg-bench demo: model {spec.name}, {len(catalog)} images", err=True)
    if recorder is not None:
        click.echo(f"recording clicks to {recorder.path}", err=True)
    click.echo(f"open http://{shown}:{port}/  (Ctrl+C stops)")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
