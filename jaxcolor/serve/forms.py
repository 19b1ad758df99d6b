"""The form fields of /v1/colorize and /v1/hints: what each means (`FIELDS`, also in /v1/info
and the OpenAPI schema), reading a multipart body (`read_form`), turning the fields into the
model's inputs by colorize's own functions (`inputs`, `prepare`, jaxcolor.inference), and the
refusals (`ApiError`: an HTTP status and a message naming the field to fix)."""

from __future__ import annotations

import re
from typing import Any

import cv2
import numpy as np
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from jaxcolor import inference
from jaxcolor.core.errors import InputError
from jaxcolor.data import hints as hints_lib
from jaxcolor.serve.state import ServerState

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
FILE_FIELDS = ("sketch", "hints", "reference")
# inference's messages name colorize's flags; the server names its form fields.
_FLAGS = re.compile(r"--(hint_points|hints|reference|size|point_size)\b")


class ApiError(Exception):
    """A refused request: HTTP status and a message that says what to fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class BodyTooLarge(Exception):
    pass


def _field_message(message: str) -> str:
    return _FLAGS.sub(lambda m: "field " + m.group(1).replace("-", "_"), message)


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


def png(rgb: np.ndarray) -> bytes:
    """RGB or RGBA uint8 -> PNG bytes."""
    code = cv2.COLOR_RGBA2BGRA if rgb.shape[-1] == 4 else cv2.COLOR_RGB2BGR
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, code))
    if not ok:  # cv2 encodes any uint8 image; a failure is a bug
        raise RuntimeError("PNG encoding failed")
    return buffer.tobytes()


async def read_form(
    request: Request, allowed: dict[str, str], files: tuple[str, ...] = FILE_FIELDS
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
    server: ServerState, fields: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    """The form fields -> the uint8 sketch, hint channels and reference view and the layout
    used, by colorize's own functions (in a thread)."""
    model, limits = server.model, server.limits
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
        return inference.decode_image(fields[name], f"Field {name}", max_pixels=limits.max_pixels)

    image = decode("sketch")
    work_h, work_w = inference.short_side_hw(image.shape[:2], size)
    if work_h * work_w > limits.max_pixels:
        raise inference.ImageTooLarge(
            f"Field size={size} makes the working image {work_w}x{work_h} px, over the "
            f"limit of {limits.max_pixels:,} pixels (--max_pixels); give a smaller size."
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


def prepare(
    server: ServerState, fields: dict[str, Any]
) -> tuple[inference.Prepared, dict[str, Any]]:
    """The form fields -> the model's input tensors and the layout used (in a thread)."""
    sketch_u8, hint_u8, reference, layout = inputs(server, fields)
    return server.model.prepare(sketch_u8, hint_u8, reference), layout


async def in_thread_or_4xx(function, server: ServerState, fields: dict[str, Any]):
    """function(server, fields) in a thread; a user's mistake becomes its 4xx ApiError."""
    try:
        return await run_in_threadpool(function, server, fields)
    except inference.ImageTooLarge as e:
        raise ApiError(413, _field_message(str(e))) from None
    except inference.UnreadableImage as e:
        raise ApiError(400, _field_message(str(e))) from None
    except InputError as e:
        raise ApiError(422, _field_message(str(e))) from None


def form_openapi(returns: str) -> dict:
    """The OpenAPI schema of an endpoint taking /v1/colorize's form and returning a PNG."""
    props = {
        name: {"type": "string", "format": "binary", "description": text}
        if name in FILE_FIELDS
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
