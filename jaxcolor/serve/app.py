"""The HTTP server: `create_app` assembles the app over an exported generator (PyTorch, no JAX):
the routes (routes.py), the form fields and refusals (forms.py), the server state (state.py: the
model, limits, metrics and micro-batcher) and, here, the body-size guard.

Inputs go through exactly the code `python -m jaxcolor.colorize` runs (jaxcolor.inference:
the one decoder, the training hint and sketch functions), then through the micro-batcher
(batcher.py). Every refusal is a JSON `{"detail": message}` with a 4xx status:

    400  the body or an image cannot be read (not multipart, not an image, truncated, 0 bytes)
    413  the body is over --max_body_mb, or an image (from its header) or the working size is
         over --max_pixels
    422  the inputs do not fit the model (missing or unknown field, hints of another size,
         a blur drawing without paint, malformed hint points, a bad size)
    503  the queue is full (retry), or the model is still warming up (/readyz)
    504  the request waited longer than --timeout_s
"""

from __future__ import annotations

import contextlib
import json
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

import jaxcolor
from jaxcolor import inference
from jaxcolor.serve.forms import FIELDS, ApiError, BodyTooLarge
from jaxcolor.serve.routes import router
from jaxcolor.serve.state import STATIC, Limits, Metrics, ServerState

__all__ = ["FIELDS", "ApiError", "Guard", "Limits", "create_app"]


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
            "(--max_body_mb); send smaller images."
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


def create_app(model: inference.Colorizer, limits: Limits | None = None) -> FastAPI:
    """The app serving `model` (an inference.Colorizer), with its batcher and metrics
    (`limits`: the defaults of `Limits` when None)."""
    limits = Limits() if limits is None else limits
    server = ServerState(model, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await server.start()
        yield
        await server.stop()

    app = FastAPI(
        title="jaxcolor serve",
        version=jaxcolor.__version__,
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the page stays self-contained
        redoc_url=None,
    )
    app.state.server = server
    app.state.metrics = server.metrics
    app.state.batcher = server.batcher

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return JSONResponse({"detail": str(e)}, status_code=e.status)

    @app.exception_handler(BodyTooLarge)
    async def _body_too_large(request: Request, e: BodyTooLarge):
        return JSONResponse({"detail": "The request body is over --max_body_mb."}, 413)

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, max_body=limits.max_body_bytes, metrics=server.metrics)
    return app
