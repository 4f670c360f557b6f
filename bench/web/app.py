"""The demo's HTTP API and the page, as one FastAPI app.

Routes:
- `GET /` the page, `GET /static/...` its script and style (served from the package);
- `GET /api/info`: model name, number of entries, whether clicks are recorded;
- `GET /api/items/{item}`: one entry's dataset, id and instances (sample id, size);
- `GET /api/items/{item}/{instance}/image`: the image as JPEG (display only; the model gets
  the original pixels);
- `POST /api/predict` `{item, instance, sample_id, clicks: [{y, x, positive}], dt_s}`: runs
  the model on all clicks, records the last one, returns the mask (run-length counts over
  the row-major image, starting with a background run), the IoU and the latency;
- `POST /api/event` `{item, instance, sample_id, event: undo|reset, n_clicks}`: records it.

Every error is JSON `{"error": message}` with a 4xx status for a bad request (unknown entry,
sample id not the one at that position, click outside the image, body too large or not
JSON) and 5xx when the model or a data file fails; the server keeps answering. Requests name
images by index only; `sample_id` is only compared with the listing, as a guard against a
page left open across a server restart with other datasets. The Host header is checked
against the bound address (a web page elsewhere cannot reach the server by DNS rebinding),
POST bodies must be `application/json` (so no cross-site form can post to it without a CORS
preflight that the app never grants), and every response forbids other origins' resources
through its Content-Security-Policy.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from bench.clicks.replay import RecordingError, dataset_key
from bench.sample import Click, Sample, SampleError
from bench.web.catalog import Catalog, Entry
from bench.web.recording import Recorder
from bench.web.session import ModelError, ModelSession

STATIC_DIR = Path(str(resources.files("bench.web") / "static"))
MAX_BODY_BYTES = 256 * 1024
"""Far above the largest legal request (MAX_CLICKS clicks is about 40 KB of JSON)."""
MAX_CLICKS = 1000
JPEG_QUALITY = 92
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ClickIn(_Strict):
    y: int
    x: int
    positive: bool


class InstanceIn(_Strict):
    item: int
    instance: int
    sample_id: str = Field(max_length=4096)


class PredictIn(InstanceIn):
    clicks: list[ClickIn] = Field(min_length=1, max_length=MAX_CLICKS)
    dt_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class EventIn(InstanceIn):
    event: Literal["undo", "reset"]
    n_clicks: int = Field(ge=0, le=MAX_CLICKS)


def mask_counts(mask: np.ndarray) -> list[int]:
    """Run lengths of the row-major mask, alternating background/object, background first."""
    flat = np.ascontiguousarray(mask, dtype=bool).reshape(-1)
    if flat.size == 0:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size])))
    if flat[0]:
        counts = np.concatenate(([0], counts))
    return counts.tolist()


def _validation_message(exc: ValidationError | RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "invalid request: " + "; ".join(parts)


class _Guard:
    """ASGI middleware: Host check, a Content-Length limit before any byte is read, and
    security headers on every response."""

    def __init__(self, app: Any, allowed_hosts: tuple[str, ...] | None, max_body: int):
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self._problem(headers)
        if problem is not None:
            await error_response(*problem)(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _problem(self, headers: dict[str, str]) -> tuple[int, str] | None:
        if self.allowed_hosts is not None:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in self.allowed_hosts:
                return 400, f"host {host!r} is not served here (allowed: {self.allowed_hosts})"
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return 400, f"invalid Content-Length {length!r}"
            if int(length) > self.max_body:
                return 413, f"request body of {length} bytes exceeds the {self.max_body} byte limit"
        return None


async def _read_body(request: Request, max_body: int) -> bytes:
    """The body, refusing to buffer more than `max_body` bytes (also without Content-Length)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, f"expected Content-Type application/json, got {content_type!r}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise ApiError(413, f"request body exceeds the {max_body} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    catalog: Catalog,
    session: ModelSession,
    recorder: Recorder | None = None,
    allowed_hosts: tuple[str, ...] | None = ("127.0.0.1", "localhost", "[::1]"),
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The app; `allowed_hosts=None` accepts any Host header (`bench demo --host`)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        session.close()
        if recorder is not None:
            recorder.close()

    app = FastAPI(
        title="iseg-bench demo",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(_Guard, allowed_hosts=allowed_hosts, max_body=max_body)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = f"no such page: {request.url.path}" if exc.status_code == 404 else exc.detail
        return error_response(exc.status_code, str(message))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # Reached only by a bug (model and data failures are ApiErrors); still JSON.
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_message(exc))

    async def parse(request: Request, model: type[_Strict]) -> Any:
        body = await _read_body(request, max_body)
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            raise ApiError(422, _validation_message(exc)) from None

    async def entry_samples(item: int) -> tuple[Entry, list[Sample]]:
        if not 0 <= item < len(catalog):
            raise ApiError(404, f"no entry {item}: the listing has entries 0..{len(catalog) - 1}")
        entry = catalog.entries[item]
        try:
            return entry, await run_in_threadpool(catalog.samples, item)
        except SampleError as exc:
            raise ApiError(500, f"{entry.dataset}/{entry.id} cannot be loaded: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a loader bug is reported, not fatal
            problem = f"{type(exc).__name__}: {exc}"
            raise ApiError(500, f"{entry.dataset}/{entry.id} cannot be loaded: {problem}") from None

    async def instance(item: int, index: int) -> tuple[Entry, Sample]:
        entry, samples = await entry_samples(item)
        if not 0 <= index < len(samples):
            raise ApiError(
                404, f"entry {item} ({entry.dataset}/{entry.id}) has no instance {index}"
            )
        return entry, samples[index]

    async def checked_instance(body: InstanceIn) -> tuple[Entry, Sample]:
        entry, sample = await instance(body.item, body.instance)
        if body.sample_id != sample.id:
            raise ApiError(
                409,
                f"entry {body.item} instance {body.instance} is {sample.id!r}, not "
                f"{body.sample_id!r}: the listing changed, reload the page",
            )
        return entry, sample

    def instance_fields(entry: Entry, sample: Sample) -> dict[str, Any]:
        height, width = sample.gt.shape
        return {"dataset": entry.dataset, "sample_id": sample.id, "height": height, "width": width}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        return {
            "model": session.name,
            "entries": len(catalog),
            "recording": recorder.path.name if recorder is not None else None,
            "max_clicks": MAX_CLICKS,
        }

    @app.get("/api/items/{item}")
    async def item_info(item: int) -> dict[str, Any]:
        entry, samples = await entry_samples(item)
        return {
            "item": item,
            "dataset": entry.dataset,
            "entry_id": entry.id,
            "has_gt": entry.has_gt,
            "instances": [
                {"sample_id": s.id, "height": s.gt.shape[0], "width": s.gt.shape[1]}
                for s in samples
            ],
        }

    @app.get("/api/items/{item}/{index}/image")
    async def image(item: int, index: int) -> Response:
        _, sample = await instance(item, index)
        bgr = cv2.cvtColor(np.ascontiguousarray(sample.image), cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ApiError(500, f"{sample.id}: the image cannot be encoded as JPEG")
        return Response(data.tobytes(), media_type="image/jpeg")

    @app.post("/api/predict")
    async def predict(request: Request) -> dict[str, Any]:
        body: PredictIn = await parse(request, PredictIn)
        entry, sample = await checked_instance(body)
        height, width = sample.gt.shape
        clicks = [Click(c.y, c.x, c.positive) for c in body.clicks]
        for number, (y, x, _) in enumerate(clicks, start=1):
            if not (0 <= y < height and 0 <= x < width):
                raise ApiError(
                    422,
                    f"click {number} at (y={y}, x={x}) is outside the {height}x{width} image "
                    f"(y in 0..{height - 1}, x in 0..{width - 1})",
                )
        key = (dataset_key(entry.dataset), sample.id)
        if recorder is not None and recorder.recorded(key)[: len(clicks) - 1] != clicks[:-1]:
            raise ApiError(
                409,
                f"the clicks before this one are not those recorded for {entry.dataset}/"
                f"{sample.id} (another tab?): reload the page",
            )
        try:
            result = await session.predict((body.item, body.instance), sample, clicks, entry.has_gt)
        except ModelError as exc:
            raise ApiError(
                500,
                f"model {session.name} failed on {entry.dataset}/{sample.id} at click "
                f"{len(clicks)}: {exc}",
            ) from None
        recorded = False
        if recorder is not None:
            last = clicks[-1]
            try:
                recorder.write(
                    "click",
                    instance_fields(entry, sample),
                    order=len(clicks),
                    y=last.y,
                    x=last.x,
                    positive=last.positive,
                    dt_s=body.dt_s,
                    iou=result.iou,
                    model_s=round(result.model_s, 6),
                )
            except RecordingError as exc:
                raise ApiError(409, f"not recorded: {exc}") from None
            except OSError as exc:
                raise ApiError(500, f"recording to {recorder.path} failed: {exc}") from None
            recorded = True
        return {
            "n_clicks": len(clicks),
            "iou": result.iou,
            "model_s": result.model_s,
            "catchup_s": result.catchup_s,
            "area": int(np.count_nonzero(result.mask)),
            "mask": {"height": height, "width": width, "counts": mask_counts(result.mask)},
            "recorded": recorded,
        }

    @app.post("/api/event")
    async def event(request: Request) -> dict[str, Any]:
        body: EventIn = await parse(request, EventIn)
        entry, sample = await checked_instance(body)
        if body.event == "reset" and body.n_clicks != 0:
            raise ApiError(422, f"a reset leaves 0 clicks, not {body.n_clicks}")
        if recorder is None:
            return {"recorded": False}
        try:
            recorder.write(body.event, instance_fields(entry, sample), n_clicks=body.n_clicks)
        except RecordingError as exc:
            raise ApiError(409, f"not recorded: {exc}") from None
        except OSError as exc:
            raise ApiError(500, f"recording to {recorder.path} failed: {exc}") from None
        return {"recorded": True}

    return app
