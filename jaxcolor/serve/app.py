"""The HTTP server: FastAPI routes over an exported generator (PyTorch, no JAX).

Inputs go through exactly the code `python -m jaxcolor.colorize` runs (jaxcolor.export.inference:
the one decoder, the training hint and sketch functions), then through the micro-batcher
(batcher.py). Every refusal is a JSON `{"detail": message}` with a 4xx status:

    400  the body or an image cannot be read (not multipart, not an image, truncated, 0 bytes)
    413  the body is over --max-body-mb, or an image (from its header) or the working size is
         over --max-pixels
    422  the inputs do not fit the model (missing or unknown field, hints of another size,
         a blur drawing without paint, malformed hint points, a bad size)
    503  the queue is full (retry), or the model is still warming up (/readyz)
    504  the request waited longer than --timeout-s
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import pathlib
import re
import time
from typing import Any

import cv2
import numpy as np
import prometheus_client
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

import jaxcolor
from jaxcolor.core.errors import ConfigError, InputError
from jaxcolor.data import hints as hints_lib
from jaxcolor.data import sketch as sketch_lib
from jaxcolor.export import inference
from jaxcolor.serve.batcher import Batcher, Overloaded

STATIC = pathlib.Path(__file__).parent / "static"
FIELDS = {
    "sketch": "the line art (image file)",
    "hints": "the hint image (file): a drawing of the sketch's size for points/strokes/"
    "scribbles; for blur, colour strokes on white or transparent paper (unpainted) of the "
    "sketch's size, spread into a dense colour map with the training blur (paint light colours "
    "slightly off-white); any colour image for palette models",
    "hint_points": 'text: "x,y,#rrggbb;..." or JSON [{"x":..,"y":..,"color":"#rrggbb"}]',
    "reference": "the colour reference image (file) of reference-guided models",
    "size": "text: the shorter side, in pixels, to colorize at (default: as uploaded)",
    "point_size": "text: side in pixels of each hint point (default 3)",
}
_FILE_FIELDS = ("sketch", "hints", "reference")
# inference's messages name colorize's flags; the server names its form fields.
_FLAGS = re.compile(r"--(hint-points|hints|reference|size|point-size)\b")


@dataclasses.dataclass(frozen=True)
class Limits:
    max_batch: int = 8
    max_wait_ms: float = 10.0
    max_queue: int = 64
    max_pixels: int = 4096 * 4096
    max_body_mb: float = 32.0
    timeout_s: float = 30.0

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 2**20)


class ApiError(Exception):
    """A refused request: HTTP status and a message that says what to fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class BodyTooLarge(Exception):
    pass


def _field_message(message: str) -> str:
    return _FLAGS.sub(lambda m: "field " + m.group(1).replace("-", "_"), message)


class Metrics:
    """Prometheus metrics of one app (own registry, so several apps can live in one process)."""

    def __init__(self, max_batch: int):
        self.registry = prometheus_client.CollectorRegistry()
        r = self.registry
        self.requests = prometheus_client.Counter(
            "jaxcolor_requests", "HTTP requests", ["path", "status"], registry=r
        )
        self.latency = prometheus_client.Histogram(
            "jaxcolor_request_seconds", "request latency", ["path", "status"], registry=r
        )
        self.queue = prometheus_client.Histogram(
            "jaxcolor_queue_seconds", "time a colorize request waited for its batch", registry=r
        )
        self.forward = prometheus_client.Histogram(
            "jaxcolor_forward_seconds", "time of one batched forward pass", registry=r
        )
        buckets = sorted({1, 2, 4, 8, 16, 32, 64, max_batch})
        self.batch = prometheus_client.Histogram(
            "jaxcolor_batch_size", "images per forward pass", buckets=buckets, registry=r
        )
        self.in_flight = prometheus_client.Gauge(
            "jaxcolor_in_flight", "HTTP requests being handled", registry=r
        )
        self.queue_depth = prometheus_client.Gauge(
            "jaxcolor_queue_depth", "colorize requests waiting for a batch", registry=r
        )

    def on_batch(self, size: int, seconds: float, waits: list[float]) -> None:
        self.batch.observe(size)
        self.forward.observe(seconds)
        for wait in waits:
            self.queue.observe(wait)


_PATHS = (
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/info",
    "/v1/colorize",
    "/v1/hints",
    "/v1/sketch",
)


def _path_label(path: str) -> str:
    if path in _PATHS:
        return path
    return "/static" if path.startswith("/static/") else "other"


def _json_error(message: str) -> bytes:
    return json.dumps({"detail": message}).encode()


class Guard:
    """ASGI middleware: the body-size limit (Content-Length first, then the bytes actually
    received), the in-flight gauge and the request count and latency by status."""

    def __init__(self, app, *, max_body: int, metrics: Metrics):
        self.app = app
        self.max_body = max_body
        self.metrics = metrics

    async def _refuse(self, send, status: int, message: str) -> None:
        body = _json_error(message)
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _too_large(self) -> str:
        return (
            f"The request body is over the server's limit of {self.max_body / 2**20:g} MB "
            "(--max-body-mb); send smaller images."
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500
        started = False

        async def send_wrapper(message):
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge
            return message

        self.metrics.in_flight.inc()
        try:
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                message = self._too_large() if length.isdigit() else "Bad Content-Length."
                await self._refuse(send_wrapper, 413 if length.isdigit() else 400, message)
                return
            try:
                await self.app(scope, limited_receive, send_wrapper)
            except BodyTooLarge:
                if started:
                    raise
                await self._refuse(send_wrapper, 413, self._too_large())
        finally:
            self.metrics.in_flight.dec()
            label = _path_label(scope["path"])
            self.metrics.requests.labels(label, str(status)).inc()
            self.metrics.latency.labels(label, str(status)).observe(time.perf_counter() - start)


def _int_field(form: dict, name: str) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(
            422, f"Field {name} must be a whole number of pixels, got {value!r}."
        ) from None


def _png(rgb: np.ndarray) -> bytes:
    """RGB or RGBA uint8 -> PNG bytes."""
    code = cv2.COLOR_RGBA2BGRA if rgb.shape[-1] == 4 else cv2.COLOR_RGB2BGR
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, code))
    if not ok:  # cv2 encodes any uint8 image; a failure is a bug
        raise RuntimeError("PNG encoding failed")
    return buffer.tobytes()


def _sketch_method(model: inference.Colorizer) -> str:
    """The model's training sketch method, or XDoG when it trained on dataset/model sketches."""
    layout = model.config["inputs"]["layout"]
    method = next((x["method"] for x in layout if x["name"] == "sketch"), None) or "xdog"
    try:
        sketch_lib.parse_sketch_mix(method)
    except (ConfigError, ValueError, KeyError):
        return "xdog"
    return method


def create_app(model: inference.Colorizer, limits: Limits = Limits()) -> FastAPI:
    """The app serving `model` (an inference.Colorizer), with its batcher and metrics."""
    metrics = Metrics(limits.max_batch)
    metrics.queue_depth.set_function(lambda: batcher.depth())
    batcher = Batcher(
        model.run,
        max_batch=limits.max_batch,
        max_wait_s=limits.max_wait_ms / 1000,
        max_queue=limits.max_queue,
        on_batch=metrics.on_batch,
    )
    state: dict[str, Any] = {"ready": False}

    async def warm_up() -> None:
        h, w = model.image_size
        sketch = np.full((h, w, 1), 255, np.uint8)
        hint = np.zeros((h, w, hints_lib.HINT_CHANNELS[model.hints]), np.uint8)
        reference = np.full((h, w, 3), 128, np.uint8) if model.takes_reference else None
        await batcher.call_direct([model.prepare(sketch, hint, reference)])
        state["ready"] = True

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        state["warm_up"] = asyncio.create_task(warm_up())
        yield
        state["ready"] = False
        await state["warm_up"]
        await batcher.stop()  # in-flight requests have finished: uvicorn drains them first

    app = FastAPI(
        title="jaxcolor serve",
        version=jaxcolor.__version__,
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the page stays self-contained
        redoc_url=None,
    )
    app.state.metrics = metrics
    app.state.batcher = batcher

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return JSONResponse({"detail": str(e)}, status_code=e.status)

    @app.exception_handler(BodyTooLarge)
    async def _body_too_large(request: Request, e: BodyTooLarge):
        return JSONResponse({"detail": "The request body is over --max-body-mb."}, 413)

    @app.get("/healthz")
    async def healthz():
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz():
        if not state["ready"]:
            return JSONResponse({"ready": False, "detail": "warming up"}, status_code=503)
        return {"ready": True}

    @app.get("/v1/info")
    async def info():
        inputs = model.config["inputs"]
        h, w = model.image_size
        return {
            "hints": model.hints,
            "hint_channels": hints_lib.HINT_CHANNELS[model.hints],
            "channels": 1 + hints_lib.HINT_CHANNELS[model.hints],
            "point_hints": model.hints in inference.POINT_METHODS,
            "hint_map": model.hints in inference.MAP_METHODS,
            "hints_image": inference.HINTS_IMAGE.get(model.hints),
            "image_size": [h, w],
            "size_multiple": model.multiple,
            "reference": model.takes_reference,
            "sketch_method": _sketch_method(model),
            "generator": model.config["generator"]["name"],
            "step": model.config["step"],
            "model_version": model.config["jaxcolor_version"],
            "version": jaxcolor.__version__,
            "point_size": hints_lib.INFERENCE_POINT_SIZE,
            "layout": inputs["layout"],
            "limits": dataclasses.asdict(limits),
            "fields": FIELDS,
        }

    @app.get("/metrics")
    async def metrics_endpoint():
        return Response(
            prometheus_client.generate_latest(metrics.registry),
            media_type=prometheus_client.CONTENT_TYPE_LATEST,
        )

    async def read_form(
        request: Request, allowed: dict[str, str], files: tuple[str, ...] = _FILE_FIELDS
    ) -> dict[str, Any]:
        kind = request.headers.get("content-type", "")
        if not kind.startswith("multipart/form-data"):
            raise ApiError(
                400,
                f"Send multipart/form-data (got {kind or 'no content type'!r}) with the fields "
                f"{', '.join(allowed)}.",
            )
        try:
            form = await request.form(max_files=len(files), max_fields=len(allowed))
        except BodyTooLarge:
            raise
        except HTTPException as e:
            raise ApiError(400, f"The multipart body cannot be read: {e.detail}.") from None
        out: dict[str, Any] = {}
        for name, value in form.multi_items():
            if name not in allowed:
                raise ApiError(422, f"Unknown field {name!r}; the fields are {', '.join(allowed)}.")
            if name in out:
                raise ApiError(422, f"Field {name} is given twice; send it once.")
            is_file = name in files
            if is_file != isinstance(value, UploadFile):
                what = "a file upload" if is_file else "text, not a file"
                raise ApiError(422, f"Field {name} must be {what}: {allowed[name]}.")
            out[name] = await value.read() if is_file else value
        return out

    def inputs(
        fields: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
        """The form fields -> the uint8 sketch, hint channels and reference view and the layout
        used, by colorize's own functions (in a thread)."""
        if "sketch" not in fields:
            raise InputError("Field sketch is missing: upload the line art as a file field.")
        size, point_size = _int_field(fields, "size"), _int_field(fields, "point_size")
        point_size = hints_lib.INFERENCE_POINT_SIZE if point_size is None else point_size
        clicks = inference.check_options(
            model,
            hints="hints" in fields,
            hint_points=fields.get("hint_points"),
            reference="reference" in fields,
            size=size,
            point_size=point_size,
        )

        def decode(name: str) -> np.ndarray:
            return inference.decode_image(
                fields[name], f"Field {name}", max_pixels=limits.max_pixels
            )

        image = decode("sketch")
        work_h, work_w = inference.short_side_hw(image.shape[:2], size)
        if work_h * work_w > limits.max_pixels:
            raise inference.ImageTooLarge(
                f"Field size={size} makes the working image {work_w}x{work_h} px, over the "
                f"limit of {limits.max_pixels:,} pixels (--max-pixels); give a smaller size."
            )
        hint_image = decode("hints") if "hints" in fields else None
        reference = None
        if "reference" in fields:
            reference = inference.reference_view(decode("reference"), model.image_size)
        sketch_u8, hint_u8 = inference.prepare_inputs(
            model,
            image,
            hint_image=hint_image,
            clicks=clicks,
            size=size,
            point_size=point_size,
            sketch_name="the sketch",
            hints_name="Field hints",
        )
        used = "hint_points" if clicks is not None else "hints" if hint_image is not None else None
        layout = {
            "hints": model.hints,
            "hints_from": used,
            "reference": reference is not None,
            "size": size,
            "input_hw": list(image.shape[:2]),
            "working_hw": list(sketch_u8.shape[:2]),
        }
        return sketch_u8, hint_u8, reference, layout

    def prepare(fields: dict[str, Any]) -> tuple[inference.Prepared, dict[str, Any]]:
        """The form fields -> the model's input tensors and the layout used (in a thread)."""
        sketch_u8, hint_u8, reference, layout = inputs(fields)
        return model.prepare(sketch_u8, hint_u8, reference), layout

    async def in_thread_or_4xx(function, fields: dict[str, Any]):
        """function(fields) in a thread; a user's mistake becomes its 4xx ApiError."""
        try:
            return await run_in_threadpool(function, fields)
        except inference.ImageTooLarge as e:
            raise ApiError(413, _field_message(str(e))) from None
        except inference.UnreadableImage as e:
            raise ApiError(400, _field_message(str(e))) from None
        except InputError as e:
            raise ApiError(422, _field_message(str(e))) from None

    @app.post("/v1/colorize", openapi_extra=_form_openapi("the colour image"))
    async def colorize(request: Request, format: str = "png"):
        if format not in ("png", "json"):
            raise ApiError(422, f"Query format={format!r}: use format=png (default) or json.")
        fields = await read_form(request, FIELDS)
        prepared, layout = await in_thread_or_4xx(prepare, fields)
        try:
            rgb = await asyncio.wait_for(
                batcher.submit(prepared.key, prepared), timeout=limits.timeout_s
            )
        except Overloaded:
            raise ApiError(
                503, f"The server is busy ({limits.max_queue} requests queued); retry shortly."
            ) from None
        except TimeoutError:
            raise ApiError(
                504, f"Colorizing took longer than the server's {limits.timeout_s:g} s limit."
            ) from None
        png = await run_in_threadpool(_png, rgb)
        if format == "json":
            return {
                "png_base64": base64.b64encode(png).decode(),
                "width": rgb.shape[1],
                "height": rgb.shape[0],
                "inputs": layout,
            }
        return Response(png, media_type="image/png")

    @app.post("/v1/hints", openapi_extra=_form_openapi("the hint channels the model receives"))
    async def hint_image(request: Request):
        """The hint channels the model receives for these /v1/colorize fields, as a PNG at the
        working size: a blur model's colour map (RGB), scribbles (RGB), or points/strokes
        hints (RGBA, alpha = mask)."""
        channels = hints_lib.HINT_CHANNELS[model.hints]
        if channels not in (3, 4):
            raise ApiError(
                422,
                f"This model's hints (data.hints={model.hints!r}, {channels} channels) are not "
                "an image; /v1/hints shows blur, points, strokes and scribbles hints. Use "
                "/v1/colorize.",
            )
        fields = await read_form(request, FIELDS)
        _, hint_u8, _, _ = await in_thread_or_4xx(inputs, fields)
        return Response(await run_in_threadpool(_png, hint_u8), media_type="image/png")

    @app.post("/v1/sketch")
    async def extract_sketch(request: Request):
        """A colour image -> its line art by the model's training sketch function (PNG)."""
        fields = await read_form(request, {"image": "the colour image (file)"}, ("image",))
        if "image" not in fields:
            raise ApiError(422, "Field image is missing: upload the colour image as a file.")

        def run() -> bytes:
            image = inference.decode_image(
                fields["image"], "Field image", max_pixels=limits.max_pixels
            )
            line_art = sketch_lib.make_sketch(_sketch_method(model), image)
            return _png(np.repeat(line_art, 3, axis=-1))

        try:
            png = await run_in_threadpool(run)
        except inference.ImageTooLarge as e:
            raise ApiError(413, str(e)) from None
        except inference.UnreadableImage as e:
            raise ApiError(400, str(e)) from None
        return Response(png, media_type="image/png")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, max_body=limits.max_body_bytes, metrics=metrics)
    return app


def _form_openapi(returns: str) -> dict:
    """The OpenAPI schema of an endpoint taking /v1/colorize's form and returning a PNG."""
    props = {
        name: {"type": "string", "format": "binary", "description": text}
        if name in _FILE_FIELDS
        else {"type": "string", "description": text}
        for name, text in FIELDS.items()
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": props, "required": ["sketch"]}
                }
            },
        },
        "responses": {"200": {"content": {"image/png": {}}, "description": returns}},
    }
