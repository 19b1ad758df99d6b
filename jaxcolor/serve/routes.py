"""The HTTP routes (an APIRouter `create_app` includes); each reads the model, limits and
batcher from the app's `ServerState` (`request.app.state.server`)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses

import numpy as np
import prometheus_client
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

import jaxcolor
from jaxcolor import inference
from jaxcolor.data import hints as hints_lib
from jaxcolor.data import sketch as sketch_lib
from jaxcolor.serve.batcher import Overloaded
from jaxcolor.serve.forms import (
    FIELDS,
    ApiError,
    form_openapi,
    in_thread_or_4xx,
    inputs,
    png,
    prepare,
    read_form,
)
from jaxcolor.serve.state import STATIC, ServerState, sketch_method

router = APIRouter()


def _server(request: Request) -> ServerState:
    return request.app.state.server


@router.get("/healthz")
async def healthz():
    return {"status": "alive"}


@router.get("/readyz")
async def readyz(request: Request):
    if not _server(request).ready:
        return JSONResponse({"ready": False, "detail": "warming up"}, status_code=503)
    return {"ready": True}


@router.get("/v1/info")
async def info(request: Request):
    server = _server(request)
    model, limits = server.model, server.limits
    inputs = model.config["inputs"]
    h, w = model.image_size
    spec = hints_lib.hint_spec(model.hints)
    return {
        "hints": model.hints,
        "hint_channels": spec.channels,
        "channels": 1 + spec.channels,
        # What the model accepts, from its hint method's spec (the page reads these, never
        # the method's name): a drawing on paper or a colour image as `hints`, points.
        "hint_input": spec.user_input,
        "hint_label": spec.label if spec.user_input == hints_lib.IMAGE else None,
        "point_hints": spec.takes_points,
        "hint_map": spec.shows_map,
        "hints_image": spec.help or None,
        "image_size": [h, w],
        "size_multiple": model.multiple,
        "reference": model.takes_reference,
        "sketch_method": sketch_method(model),
        "generator": model.config["generator"]["name"],
        "step": model.config["step"],
        "model_version": model.config["jaxcolor_version"],
        "version": jaxcolor.__version__,
        "point_size": hints_lib.INFERENCE_POINT_SIZE,
        "layout": inputs["layout"],
        "limits": dataclasses.asdict(limits),
        "fields": FIELDS,
    }


@router.get("/metrics")
async def metrics_endpoint(request: Request):
    return Response(
        prometheus_client.generate_latest(_server(request).metrics.registry),
        media_type=prometheus_client.CONTENT_TYPE_LATEST,
    )


@router.post("/v1/colorize", openapi_extra=form_openapi("the colour image"))
async def colorize(request: Request, format: str = "png"):
    if format not in ("png", "json"):
        raise ApiError(422, f"Query format={format!r}: use format=png (default) or json.")
    server = _server(request)
    limits = server.limits
    fields = await read_form(request, FIELDS)
    prepared, layout = await in_thread_or_4xx(prepare, server, fields)
    try:
        rgb = await asyncio.wait_for(
            server.batcher.submit(prepared.key, prepared), timeout=limits.timeout_s
        )
    except Overloaded:
        raise ApiError(
            503, f"The server is busy ({limits.max_queue} requests queued); retry shortly."
        ) from None
    except TimeoutError:
        raise ApiError(
            504, f"Colorizing took longer than the server's {limits.timeout_s:g} s limit."
        ) from None
    image = await run_in_threadpool(png, rgb)
    if format == "json":
        return {
            "png_base64": base64.b64encode(image).decode(),
            "width": rgb.shape[1],
            "height": rgb.shape[0],
            "inputs": layout,
        }
    return Response(image, media_type="image/png")


@router.post("/v1/hints", openapi_extra=form_openapi("the hint channels the model receives"))
async def hint_image(request: Request):
    """The hint channels the model receives for these /v1/colorize fields, as a PNG at the
    working size: a blur model's colour map (RGB), scribbles (RGB), or points/strokes
    hints (RGBA, alpha = mask)."""
    server = _server(request)
    model = server.model
    channels = hints_lib.HINT_CHANNELS[model.hints]
    if channels not in (3, 4):
        shown = [m for m in hints_lib.methods() if hints_lib.HINT_CHANNELS[m] in (3, 4)]
        raise ApiError(
            422,
            f"This model's hints (data.hints={model.hints!r}, {channels} channels) are not "
            f"an image; /v1/hints shows hints of 3 or 4 channels ({', '.join(shown)}). Use "
            "/v1/colorize.",
        )
    fields = await read_form(request, FIELDS)
    _, hint_u8, _, _ = await in_thread_or_4xx(inputs, server, fields)
    return Response(await run_in_threadpool(png, hint_u8), media_type="image/png")


@router.post("/v1/sketch")
async def extract_sketch(request: Request):
    """A colour image -> its line art by the model's training sketch function (PNG)."""
    server = _server(request)
    fields = await read_form(request, {"image": "the colour image (file)"}, ("image",))
    if "image" not in fields:
        raise ApiError(422, "Field image is missing: upload the colour image as a file.")

    def run() -> bytes:
        image = inference.decode_image(
            fields["image"], "Field image", max_pixels=server.limits.max_pixels
        )
        line_art = sketch_lib.make_sketch(sketch_method(server.model), image)
        return png(np.repeat(line_art, 3, axis=-1))

    try:
        image = await run_in_threadpool(run)
    except inference.ImageTooLarge as e:
        raise ApiError(413, str(e)) from None
    except inference.UnreadableImage as e:
        raise ApiError(400, str(e)) from None
    return Response(image, media_type="image/png")


@router.get("/", include_in_schema=False)
async def page():
    return FileResponse(STATIC / "index.html", media_type="text/html")
