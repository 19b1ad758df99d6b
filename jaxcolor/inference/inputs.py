"""Input preparation, shared by `python -m jaxcolor.colorize` (files) and `python -m
jaxcolor.serve` (uploads), so they cannot drift: `check_options` (which inputs were given, against
the model's layout), `decode_image` (training's decoder, jaxcolor.data.decode) and
`prepare_inputs` (the uint8 sketch and hint channels at the working size, made by the hint
method's spec in jaxcolor.data.hints). Imports no JAX.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Sequence

import cv2
import numpy as np

from jaxcolor.core.errors import InputError
from jaxcolor.data import decode as decode_lib
from jaxcolor.data import hints as hints_lib
from jaxcolor.data.crop import crop_resize
from jaxcolor.inference.runtime import Colorizer

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_POINT = re.compile(r"^\s*(\d+)\s*,\s*(\d+)\s*,\s*#([0-9a-fA-F]{6})\s*$")


class UnreadableImage(InputError):
    """Image bytes the decoder refuses (empty, not an image, truncated, too small)."""


class ImageTooLarge(UnreadableImage):
    """An image whose header claims more pixels than allowed; refused before decoding."""


def decode_image(data: bytes, what: str, *, max_pixels: int | None = None) -> np.ndarray:
    """Image bytes -> uint8 RGB (H, W, 3), decoded by training's decoder (data.decode): EXIF
    orientation applied, alpha composited on white, grayscale, palette, CMYK and 16-bit
    converted, so inference sees a file as training would have. `max_pixels`: refuse larger
    images from their header (`ImageTooLarge`), before decoding."""
    try:
        return decode_lib.decode(data, max_pixels=max_pixels)
    except decode_lib.TooManyPixels as e:
        raise ImageTooLarge(
            f"{what} is too large: {e}; send a smaller image (scale it down first)."
        ) from None
    except decode_lib.BadImage as e:
        raise UnreadableImage(
            f"{what} is not an image colorize can use: {e}; give a PNG, JPEG, WebP, BMP "
            f"or TIFF image of at least {decode_lib.MIN_SIDE} px per side."
        ) from None


def read_image(path: str | pathlib.Path, what: str) -> np.ndarray:
    """Any image file -> uint8 RGB (H, W, 3) by `decode_image`."""
    path = pathlib.Path(path)
    if not path.exists():
        raise InputError(f"{what} {path} does not exist.")
    if not path.is_file():
        raise InputError(f"{what} {path} is not a file.")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{what} {path} cannot be read: {e.strerror or e}.") from None
    return decode_image(data, f"{what} {path}")


def to_sketch(image: np.ndarray) -> np.ndarray:
    """RGB -> grayscale (H, W, 1) line art, as the training sketch (cv2's RGB -> gray weights;
    a gray image stored as RGB keeps its values)."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]


def short_side_hw(hw: tuple[int, int], size: int | None) -> tuple[int, int]:
    """(H, W) after `resize_short_side` to `size`."""
    h, w = hw
    if size is None or min(h, w) == size:
        return h, w
    scale = size / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_short_side(image: np.ndarray, size: int | None, *, nearest: bool = False) -> np.ndarray:
    """Scales so the shorter side is `size` (None: unchanged); keeps (H, W, C).

    `nearest` keeps exact colours (hint drawings: no blended colours at a stroke's edge).
    """
    h, w = image.shape[:2]
    if size is None or min(h, w) == size:
        return image
    scale = size / min(h, w)
    nh, nw = short_side_hw((h, w), size)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    out = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_NEAREST if nearest else interp)
    return out.reshape(nh, nw, image.shape[-1])


def _json_points(text: str) -> list[tuple[int, int, tuple[int, int, int]]]:
    """'[{"x": 3, "y": 4, "color": "#rrggbb"}, ...]' (or [[x, y, "#rrggbb"], ...]) -> points."""
    form = '[{"x": 3, "y": 4, "color": "#ff0000"}, ...]'
    try:
        items = json.loads(text)
    except ValueError as e:
        raise InputError(f"--hint_points is not valid JSON ({e}); give {form}.") from None
    if not isinstance(items, list):
        raise InputError(f"--hint_points JSON must be a list of points such as {form}.")
    points = []
    for item in items:
        if isinstance(item, dict) and set(item) == {"x", "y", "color"}:
            x, y, color = item["x"], item["y"], item["color"]
        elif isinstance(item, list) and len(item) == 3:
            x, y, color = item
        else:
            raise InputError(f"--hint_points JSON entry {item!r} is not a point such as {form}.")
        ints = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (x, y))
        if not ints or not isinstance(color, str) or _COLOR.match(color) is None:
            raise InputError(
                f"--hint_points JSON entry {item!r}: x and y must be pixel numbers >= 0 and "
                'color "#rrggbb".'
            )
        rgb = bytes.fromhex(color[1:])
        points.append((x, y, (rgb[0], rgb[1], rgb[2])))
    if not points:
        raise InputError(f"--hint_points is an empty list; give {form}.")
    return points


def parse_hint_points(text: str) -> list[tuple[int, int, tuple[int, int, int]]]:
    """ "x,y,#rrggbb;x,y,#rrggbb" (or the JSON list of `_json_points`) -> [(x, y, (r, g, b))]."""
    if text.lstrip().startswith("["):
        return _json_points(text)
    points = []
    for part in filter(str.strip, text.split(";")):
        m = _POINT.match(part)
        if m is None:
            raise InputError(f"--hint_points entry {part!r} is not of the form x,y,#rrggbb.")
        rgb = bytes.fromhex(m.group(3))
        points.append((int(m.group(1)), int(m.group(2)), (rgb[0], rgb[1], rgb[2])))
    if not points:
        raise InputError("--hint_points is empty; give x,y,#rrggbb entries separated by ';'.")
    return points


def hint_channels_for(
    method: str,
    hints_path: pathlib.Path | None,
    *,
    sketch_path: pathlib.Path,
    original_hw: tuple[int, int],
    model_hw: tuple[int, int],
) -> np.ndarray:
    """The hint channels for one sketch from the --hints file (see `hint_channels`)."""
    if hints_path is not None:
        _require_hint_model(method, "--hints")
    # A grayscale file is used as its gray RGB, as training uses a grayscale colour image.
    image = None if hints_path is None else read_image(hints_path, "Hints image")
    return hint_channels(
        method,
        image,
        hints_name=f"Hints image {hints_path}",
        sketch_name=f"sketch {sketch_path}",
        original_hw=original_hw,
        model_hw=model_hw,
    )


def hint_channels(
    method: str,
    image: np.ndarray | None,
    *,
    hints_name: str,
    sketch_name: str,
    original_hw: tuple[int, int],
    model_hw: tuple[int, int],
) -> np.ndarray:
    """The hint channels for one sketch from the decoded hint image (None: no --hints given),
    made by the spec of `method` (jaxcolor.data.hints.HintSpec).

    A DRAWING (the sketch's size) is resized nearest-neighbour to the working size, so colours
    stay exact (pixels with every channel above hints.PAPER_LEVEL are paper), then the spec's
    `from_user` makes the channels: blur spreads the painted colours into the dense colour map
    training shows (a drawing without paint is refused, the spec's `needs_paint`); points and
    strokes make every painted pixel a hint of its own colour with mask 255; scribbles the same
    drawing, paper made pure white, no mask. An IMAGE (any colour image: palette's reference)
    goes to `from_user` as given.
    """
    spec = hints_lib.hint_spec(method)
    if spec.user_input is None:
        if image is not None:
            _require_hint_model(method, "--hints")
        return np.zeros((*model_hw, 0), np.uint8)
    if image is None:
        also = ' or --hint_points "x,y,#rrggbb;..."' if spec.takes_points else ""
        raise InputError(
            f"This model takes colour hints (data.hints={method!r}): pass --hints IMAGE, "
            f"{spec.help}{also}."
        )
    if spec.user_input == hints_lib.IMAGE:
        return spec.from_user(image, model_hw)
    if image.shape[:2] != original_hw:
        raise InputError(
            f"{hints_name} is {image.shape[1]}x{image.shape[0]} but {sketch_name} is "
            f"{original_hw[1]}x{original_hw[0]}; they must be the same size."
        )
    drawing = resize_short_side(image, min(model_hw), nearest=True)
    if spec.needs_paint is not None:
        require_paint(drawing, hints_name, spec.needs_paint)
    return spec.from_user(drawing, drawing.shape[:2])


def require_paint(drawing: np.ndarray, hints_name: str, reason: str) -> None:
    """Refuses a drawing at the working size without paint (a map spread from it would be a
    guess, not the user's colours); `reason`: the hint spec's `needs_paint`."""
    if not hints_lib.paint_mask(drawing).any():
        h, w = drawing.shape[:2]
        level = hints_lib.PAPER_LEVEL
        raise InputError(
            f"{hints_name} has no paint at the working size {w}x{h}: every pixel is white or "
            f"transparent paper (all channels above {level}). {reason}: paint at least one "
            f"colour; paint light colours slightly off-white (a channel at {level} or below), "
            "and thicker if the drawing is scaled down."
        )


def reference_image(path: str | pathlib.Path, size: int | Sequence[int]) -> np.ndarray:
    """--reference -> uint8 (h, w, 3) RGB at the training image size (an int or (h, w)):
    scaled to cover it and centre-cropped by `crop_resize`, as validation makes the target's
    own view."""
    image = read_image(path, "Reference image")  # grayscale: its gray RGB, as in training
    return reference_view(image, size)


def reference_view(image: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """A decoded reference -> its view at the training image size (see `reference_image`)."""
    return np.ascontiguousarray(crop_resize(image, size, None))


def _require_hint_model(method: str, flag: str) -> None:
    if hints_lib.hint_spec(method).user_input is None:
        raise InputError(
            f"This model was trained without colour hints (data.hints={method!r}); drop {flag}."
        )


def _require_point_model(method: str) -> None:
    spec = hints_lib.hint_spec(method)
    if not spec.takes_points:
        takers = [name for name in hints_lib.methods() if hints_lib.hint_spec(name).takes_points]
        raise InputError(
            "--hint_points needs a model trained with point hints (data.hints in "
            f"{', '.join(map(repr, takers))}); this model was trained with "
            f"data.hints={method!r}"
            + (": pass --hints IMAGE instead." if spec.user_input is not None else ".")
        )


def point_hint_channels(
    method: str,
    clicks: list[tuple[int, int, tuple[int, int, int]]],
    *,
    sketch_path: pathlib.Path | str,
    original_hw: tuple[int, int],
    model_hw: tuple[int, int],
    point_size: int = hints_lib.INFERENCE_POINT_SIZE,
) -> np.ndarray:
    """--hint_points (pixels of the original sketch) -> R, G, B, mask at the working size.

    Each point becomes a point_size x point_size square of its colour with mask 255, centred on
    it and rasterised by hints.points_from_clicks, the renderer of the training patches.
    """
    _require_point_model(method)
    h, w = original_hw
    for x, y, _ in clicks:
        if not (0 <= x < w and 0 <= y < h):
            raise InputError(
                f"--hint_points {x},{y} is outside {sketch_path} ({w}x{h}); x must be in "
                f"[0, {w - 1}] and y in [0, {h - 1}]."
            )
    sy, sx = model_hw[0] / h, model_hw[1] / w
    scaled = [
        (min(int((x + 0.5) * sx), model_hw[1] - 1), min(int((y + 0.5) * sy), model_hw[0] - 1), rgb)
        for x, y, rgb in clicks
    ]
    points = hints_lib.points_from_clicks(scaled, model_hw, point_size)
    return hints_lib.hint_spec(method).from_points(points)


def check_options(
    model: Colorizer,
    *,
    hints: bool,
    hint_points: str | None,
    reference: bool,
    size: int | None,
    point_size: int,
) -> list[tuple[int, int, tuple[int, int, int]]] | None:
    """Checks which inputs were given against the model's layout, before any image is read;
    returns the parsed hint points (None without them). Shared by colorize and the server."""
    method = model.hints
    if hints:
        _require_hint_model(method, "--hints")
    if model.takes_reference and not reference:
        raise InputError(
            f"This model is reference-guided (model.generator.name="
            f"{model.config['generator']['name']!r}): pass --reference IMAGE, a colour image "
            "whose colours the result takes."
        )
    if reference and not model.takes_reference:
        raise InputError(
            "--reference is for reference-guided models; this model was trained without one."
        )
    clicks = None
    if hint_points is not None:
        clicks = parse_hint_points(hint_points)  # report a malformed list first
        if hints:
            raise InputError("Give either --hints or --hint_points, not both.")
        _require_point_model(method)
    if point_size < 1:
        raise InputError(f"--point_size must be a positive number of pixels, got {point_size}.")
    if size is not None and size < 1:
        raise InputError(f"--size must be a positive number of pixels, got {size}.")
    return clicks


def prepare_inputs(
    model: Colorizer,
    image: np.ndarray,
    *,
    hint_image: np.ndarray | None,
    clicks: list[tuple[int, int, tuple[int, int, int]]] | None,
    size: int | None,
    point_size: int,
    sketch_name: str,
    hints_name: str,
) -> tuple[np.ndarray, np.ndarray]:
    """A decoded sketch and hint image (or points) -> the uint8 sketch (H, W, 1) and hint
    channels (H, W, C) at the working size, by the training functions. Shared by colorize and
    the server (jaxcolor.serve)."""
    sketch_u8 = resize_short_side(to_sketch(image), size)
    where = dict(original_hw=image.shape[:2], model_hw=sketch_u8.shape[:2])
    if clicks is not None:
        hint_u8 = point_hint_channels(
            model.hints, clicks, point_size=point_size, sketch_path=sketch_name, **where
        )
    else:
        hint_u8 = hint_channels(
            model.hints, hint_image, hints_name=hints_name, sketch_name=sketch_name, **where
        )
    return sketch_u8, hint_u8
