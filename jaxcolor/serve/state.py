"""The server's state: its limits, its Prometheus metrics, and `ServerState` (the model, the
micro-batcher, whether warm-up has run), which the routes read from `app.state.server`."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib

import numpy as np
import prometheus_client

from jaxcolor import inference
from jaxcolor.core.errors import ConfigError
from jaxcolor.data import hints as hints_lib
from jaxcolor.data import sketch as sketch_lib
from jaxcolor.serve.batcher import Batcher

STATIC = pathlib.Path(__file__).parent / "static"  # the page


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


def sketch_method(model: inference.Colorizer) -> str:
    """The model's training sketch method, or XDoG when it trained on dataset/model sketches."""
    layout = model.config["inputs"]["layout"]
    method = next((x["method"] for x in layout if x["name"] == "sketch"), None) or "xdog"
    try:
        sketch_lib.parse_sketch_mix(method)
    except (ConfigError, ValueError, KeyError):
        return "xdog"
    return method


class ServerState:
    """One app's model, limits, metrics and batcher, and whether warm-up has run (`ready`)."""

    def __init__(self, model: inference.Colorizer, limits: Limits):
        self.model = model
        self.limits = limits
        self.metrics = Metrics(limits.max_batch)
        self.batcher = Batcher(
            model.run,
            max_batch=limits.max_batch,
            max_wait_s=limits.max_wait_ms / 1000,
            max_queue=limits.max_queue,
            on_batch=self.metrics.on_batch,
        )
        self.metrics.queue_depth.set_function(self.batcher.depth)
        self.ready = False
        self._warm_up: asyncio.Task | None = None

    async def warm_up(self) -> None:
        model = self.model
        h, w = model.image_size
        sketch = np.full((h, w, 1), 255, np.uint8)
        hint = np.zeros((h, w, hints_lib.HINT_CHANNELS[model.hints]), np.uint8)
        reference = np.full((h, w, 3), 128, np.uint8) if model.takes_reference else None
        await self.batcher.call_direct([model.prepare(sketch, hint, reference)])
        self.ready = True

    async def start(self) -> None:
        await self.batcher.start()
        self._warm_up = asyncio.create_task(self.warm_up())

    async def stop(self) -> None:
        self.ready = False
        await self._warm_up
        await self.batcher.stop()  # in-flight requests have finished: uvicorn drains them first
