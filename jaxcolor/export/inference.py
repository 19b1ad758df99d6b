"""Colorize sketches with an exported generator in PyTorch; imports no JAX.

The inputs are prepared exactly as in training (jaxcolor.nets.inputs.model_inputs): the sketch
as one grayscale channel, then the hint channels made by the same jaxcolor.data.hints function,
all scaled from uint8 to [-1, 1]. Every image file (sketch, hints, reference) is decoded by
training's decoder, jaxcolor.data.decode. Any size works: the image is padded to a multiple of
2**num_downs and the output cropped back.

`python -m jaxcolor.colorize` (files) and `python -m jaxcolor.serve` (uploads) both go through
`check_options`, `decode_image` and `prepare_inputs` here, then `Colorizer.run`, which takes a
batch of images of one padded shape.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import pathlib
import re
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from jaxcolor.core.errors import InputError
from jaxcolor.core.image_size import hw
from jaxcolor.data import decode as decode_lib
from jaxcolor.data import hints as hints_lib
from jaxcolor.data.crop import crop_resize
from jaxcolor.export import torch_models

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
_GLOB_CHARS = re.compile(r"[*?\[]")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_POINT = re.compile(r"^\s*(\d+)\s*,\s*(\d+)\s*,\s*#([0-9a-fA-F]{6})\s*$")


class UnreadableImage(InputError):
    """Image bytes the decoder refuses (empty, not an image, truncated, too small)."""


class ImageTooLarge(UnreadableImage):
    """An image whose header claims more pixels than allowed; refused before decoding."""


@dataclasses.dataclass
class Colorizer:
    """An exported generator ready to run, with the input layout from its config.json."""

    generator: torch.nn.Module
    config: dict
    device: torch.device

    @property
    def hints(self) -> str:
        return self.config["inputs"]["hints"]

    @property
    def multiple(self) -> int:
        return int(self.config["inputs"]["size_multiple"])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the training images (config.json: an int if square, or [h, w])."""
        return hw(self.config["inputs"]["image_size"])

    @property
    def takes_reference(self) -> bool:
        """Reference-guided models take a colour reference image besides the sketch."""
        return "reference" in self.config["inputs"]

    def __call__(
        self, sketch: np.ndarray, hint_channels: np.ndarray, reference: np.ndarray | None = None
    ) -> np.ndarray:
        """uint8 (H, W, 1) sketch + uint8 (H, W, C) hints (+ uint8 (H', W', 3) reference for
        reference-guided models) -> uint8 (H, W, 3) RGB."""
        return self.run([self.prepare(sketch, hint_channels, reference)])[0]

    def prepare(
        self, sketch: np.ndarray, hint_channels: np.ndarray, reference: np.ndarray | None = None
    ) -> Prepared:
        """uint8 inputs -> the padded [-1, 1] tensors of one image (on the CPU), for `run`."""
        condition = np.concatenate([sketch, hint_channels], axis=-1)
        x = torch.from_numpy(np.ascontiguousarray(condition)).permute(2, 0, 1)[None].float()
        x = x / 127.5 - 1.0
        h, w = x.shape[-2:]
        r = None
        if self.takes_reference:
            if reference is None:
                raise InputError(
                    "This model is reference-guided: pass --reference IMAGE, a colour image "
                    "whose colours the result takes."
                )
            r = torch.from_numpy(np.ascontiguousarray(reference))
            r = r.permute(2, 0, 1)[None].float() / 127.5 - 1.0
        return Prepared(pad_to_multiple(x, self.multiple), (h, w), r)

    def run(self, items: Sequence[Prepared]) -> list[np.ndarray]:
        """One forward pass over images of one padded shape (`Prepared.key`) -> uint8 RGB each.

        Every network of the family is per-example in eval mode (BatchNorm's running
        statistics, instance norm), so an image's output does not depend on its batch mates.
        """
        if len({item.key for item in items}) != 1:
            raise ValueError(f"run() takes one padded shape, got {[i.key for i in items]}")
        inputs = [torch.cat([item.x for item in items]).to(self.device)]
        if self.takes_reference:
            inputs.append(torch.cat([item.reference for item in items]).to(self.device))
        with torch.inference_mode():
            y = self.generator(*inputs)
        y = ((y + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu()
        outputs = []
        for i, item in enumerate(items):
            (h, w), (ph, pw) = item.hw, item.x.shape[-2:]
            top, left = (ph - h) // 2, (pw - w) // 2
            outputs.append(y[i, :, top : top + h, left : left + w].permute(1, 2, 0).numpy())
        return outputs


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One image's generator inputs: the padded condition (1, C, H', W') in [-1, 1], the size
    to crop the output back to, and the reference (1, 3, h, w) of reference-guided models."""

    x: torch.Tensor
    hw: tuple[int, int]
    reference: torch.Tensor | None = None

    @property
    def key(self) -> tuple:
        """Images with equal keys can share one forward pass."""
        ref = None if self.reference is None else tuple(self.reference.shape)
        return (tuple(self.x.shape), ref)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pads (B, C, H, W) evenly on both sides to multiples of `multiple`.

    Reflection continues lines and colour regions the way the training crops (cut from larger
    pictures) continue past their border; replicate would smear every border pixel into a
    stripe. Reflection needs the pad to be smaller than the side, so tiny images replicate.
    """
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, pads, mode=mode)


def load(model_dir: str | pathlib.Path, device: str | None = None) -> Colorizer:
    """Export directory -> Colorizer on `device` (default: cuda if available, else cpu)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: this PyTorch has no CUDA device; use --device cpu.")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise InputError(f"--device {device!r} is not a PyTorch device: {e}") from e
    generator, config = torch_models.load(model_dir, "generator", device=dev)
    if config["task"] != "colorize":
        raise InputError(
            f"{model_dir} is a sketch extractor (task={config['task']!r}: colour image in, "
            "sketch out), not a colorizer; train a colorizer with "
            f"--config.data.sketch='model:{model_dir}' to use it."
        )
    return Colorizer(generator, config, dev)


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
        raise InputError(f"--hint-points is not valid JSON ({e}); give {form}.") from None
    if not isinstance(items, list):
        raise InputError(f"--hint-points JSON must be a list of points such as {form}.")
    points = []
    for item in items:
        if isinstance(item, dict) and set(item) == {"x", "y", "color"}:
            x, y, color = item["x"], item["y"], item["color"]
        elif isinstance(item, list) and len(item) == 3:
            x, y, color = item
        else:
            raise InputError(f"--hint-points JSON entry {item!r} is not a point such as {form}.")
        ints = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (x, y))
        if not ints or not isinstance(color, str) or _COLOR.match(color) is None:
            raise InputError(
                f"--hint-points JSON entry {item!r}: x and y must be pixel numbers >= 0 and "
                'color "#rrggbb".'
            )
        rgb = bytes.fromhex(color[1:])
        points.append((x, y, (rgb[0], rgb[1], rgb[2])))
    if not points:
        raise InputError(f"--hint-points is an empty list; give {form}.")
    return points


def parse_hint_points(text: str) -> list[tuple[int, int, tuple[int, int, int]]]:
    """ "x,y,#rrggbb;x,y,#rrggbb" (or the JSON list of `_json_points`) -> [(x, y, (r, g, b))]."""
    if text.lstrip().startswith("["):
        return _json_points(text)
    points = []
    for part in filter(str.strip, text.split(";")):
        m = _POINT.match(part)
        if m is None:
            raise InputError(f"--hint-points entry {part!r} is not of the form x,y,#rrggbb.")
        rgb = bytes.fromhex(m.group(3))
        points.append((int(m.group(1)), int(m.group(2)), (rgb[0], rgb[1], rgb[2])))
    if not points:
        raise InputError("--hint-points is empty; give x,y,#rrggbb entries separated by ';'.")
    return points


# Hint methods drawn as colour on paper, so --hints takes a drawing and --hint-points works.
POINT_METHODS = ("points", "strokes", "scribbles")
# Hint methods whose drawing is spread into a dense colour map (the page can show it).
MAP_METHODS = ("blur",)


# What --hints means for each data.hints method (used in messages, the page and the README).
HINTS_IMAGE = {
    "blur": "a drawing of the sketch's size: colour strokes (or a whole colour image) on white "
    "or transparent paper, spread into a dense colour map with the training blur; white and "
    "transparent are unpainted paper, so paint light colours slightly off-white",
    "points": "a drawing of the sketch's size: coloured dots on white or transparent paper",
    "strokes": "a drawing of the sketch's size: colour scribbles on white or transparent paper",
    "scribbles": "a drawing of the sketch's size: colour scribbles on white or transparent paper",
    "palette": "a colour reference image of any size (its 4-band palette is taken as in training)",
}


def hint_channels_for(
    method: str,
    hints_path: pathlib.Path | None,
    *,
    sketch_path: pathlib.Path,
    original_hw: tuple[int, int],
    model_hw: tuple[int, int],
) -> np.ndarray:
    """The hint channels for one sketch from the --hints file (see `hint_channels`)."""
    if method == "none" and hints_path is not None:
        raise InputError(
            "This model was trained without colour hints (data.hints='none'); drop --hints."
        )
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
    """The hint channels for one sketch, made by the training functions for `method` from the
    decoded hint image (None: no --hints given).

    Every drawing (the sketch's size) is resized nearest-neighbour to the working size, so
    colours stay exact; pixels with every channel above hints.PAPER_LEVEL are paper.
    - blur: the painted colours are spread over the paper and blurred with the training sigma
      at the working size (hints.blur_hints_from_drawing): the dense colour map training
      shows. A drawing without paper is a colour image, blurred exactly as in training; one
      without paint is refused.
    - points, strokes: paper is no hint, every other pixel a hint of its own colour with mask
      255 (hints.hints_from_drawing).
    - scribbles: the same drawing, paper made pure white and no mask
      (hints.scribbles_from_drawing).
    - palette: any reference image; hints.palette_colors of it, rendered at the working size.
    """
    if method == "none":
        if image is not None:
            raise InputError(
                "This model was trained without colour hints (data.hints='none'); drop --hints."
            )
        return np.zeros((*model_hw, 0), np.uint8)
    if image is None:
        also = ' or --hint-points "x,y,#rrggbb;..."' if method in POINT_METHODS else ""
        raise InputError(
            f"This model takes colour hints (data.hints={method!r}): pass --hints IMAGE, "
            f"{HINTS_IMAGE[method]}{also}."
        )
    if method == "palette":
        return hints_lib.render_palette(hints_lib.palette_colors(image), model_hw)
    if image.shape[:2] != original_hw:
        raise InputError(
            f"{hints_name} is {image.shape[1]}x{image.shape[0]} but {sketch_name} is "
            f"{original_hw[1]}x{original_hw[0]}; they must be the same size."
        )
    drawing = resize_short_side(image, min(model_hw), nearest=True)
    if method in MAP_METHODS:
        return color_map(drawing, hints_name)
    if method == "scribbles":
        return hints_lib.scribbles_from_drawing(drawing)
    if method in POINT_METHODS:
        return hints_lib.hints_from_drawing(drawing)
    return hints_lib.make_hints(method, resize_short_side(image, min(model_hw)))


def color_map(drawing: np.ndarray, hints_name: str) -> np.ndarray:
    """A blur model's dense colour map from a drawing at the working size; a drawing without
    paint is refused (the map would be a guess, not the user's colours)."""
    if not hints_lib.paint_mask(drawing).any():
        h, w = drawing.shape[:2]
        level = hints_lib.PAPER_LEVEL
        raise InputError(
            f"{hints_name} has no paint at the working size {w}x{h}: every pixel is white or "
            f"transparent paper (all channels above {level}). A blur model spreads the painted "
            "colours into its colour map: paint at least one colour; paint light colours "
            f"slightly off-white (a channel at {level} or below), and thicker if the drawing is "
            "scaled down."
        )
    return hints_lib.blur_hints_from_drawing(drawing)


def reference_image(path: str | pathlib.Path, size: int | Sequence[int]) -> np.ndarray:
    """--reference -> uint8 (h, w, 3) RGB at the training image size (an int or (h, w)):
    scaled to cover it and centre-cropped by `crop_resize`, as validation makes the target's
    own view."""
    image = read_image(path, "Reference image")  # grayscale: its gray RGB, as in training
    return reference_view(image, size)


def reference_view(image: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """A decoded reference -> its view at the training image size (see `reference_image`)."""
    return np.ascontiguousarray(crop_resize(image, size, None))


def _require_point_model(method: str) -> None:
    if method not in POINT_METHODS:
        raise InputError(
            "--hint-points needs a model trained with point hints (data.hints='points') or "
            f"stroke hints ('strokes', 'scribbles'); this model was trained with "
            f"data.hints={method!r}"
            + (": pass --hints IMAGE instead." if method != "none" else ".")
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
    """--hint-points (pixels of the original sketch) -> R, G, B, mask at the working size.

    Each point becomes a point_size x point_size square of its colour with mask 255, centred on
    it and rasterised by hints.points_from_clicks, the renderer of the training patches.
    """
    _require_point_model(method)
    h, w = original_hw
    for x, y, _ in clicks:
        if not (0 <= x < w and 0 <= y < h):
            raise InputError(
                f"--hint-points {x},{y} is outside {sketch_path} ({w}x{h}); x must be in "
                f"[0, {w - 1}] and y in [0, {h - 1}]."
            )
    sy, sx = model_hw[0] / h, model_hw[1] / w
    scaled = [
        (min(int((x + 0.5) * sx), model_hw[1] - 1), min(int((y + 0.5) * sy), model_hw[0] - 1), rgb)
        for x, y, rgb in clicks
    ]
    points = hints_lib.points_from_clicks(scaled, model_hw, point_size)
    return hints_lib.scribbles_on_paper(points) if method == "scribbles" else points


def expand_sketches(pattern: str) -> list[pathlib.Path]:
    """A file, or a glob ('dir/*.png') -> sorted files; errors when nothing matches."""
    if _GLOB_CHARS.search(pattern):
        files = sorted(pathlib.Path(p) for p in glob.glob(pattern, recursive=True))
        files = [p for p in files if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise InputError(
                f"--sketch {pattern!r} matches no image files ({', '.join(IMAGE_SUFFIXES)})."
            )
        return files
    path = pathlib.Path(pattern)
    if not path.exists():
        raise InputError(f"Sketch {path} does not exist.")
    return [path]


def hints_for(sketch: pathlib.Path, hints: str | None) -> pathlib.Path | None:
    """--hints: one image for every sketch, or a directory with a same-named image per sketch."""
    if hints is None:
        return None
    path = pathlib.Path(hints)
    if path.is_dir():
        for suffix in (sketch.suffix, *IMAGE_SUFFIXES):
            candidate = path / (sketch.stem + suffix)
            if candidate.is_file():
                return candidate
        raise InputError(
            f"--hints directory {path} has no image named {sketch.stem}.* for {sketch}."
        )
    if not path.exists():
        raise InputError(f"Hints image {path} does not exist.")
    return path


def output_paths(sketches: Sequence[pathlib.Path], out: str) -> list[pathlib.Path]:
    """One sketch and an image name -> that file; otherwise OUT is a directory of <stem>.png."""
    out_path = pathlib.Path(out)
    if len(sketches) == 1 and out_path.suffix.lower() in IMAGE_SUFFIXES and not out_path.is_dir():
        return [out_path]
    if out_path.suffix.lower() in IMAGE_SUFFIXES and not out_path.is_dir():
        raise InputError(
            f"--out {out} is a file name but --sketch matched {len(sketches)} files; give a "
            "directory."
        )
    paths = [out_path / f"{s.stem}.png" for s in sketches]
    if len(set(paths)) != len(paths):
        raise InputError("Several sketches share a file name; colorize them in separate runs.")
    inputs = {s.resolve() for s in sketches}
    clash = [p for p in paths if p.resolve() in inputs]
    if clash:
        raise InputError(
            f"--out {out} would overwrite the sketch {clash[0]}; choose another --out."
        )
    return paths


def colorize_files(
    model: Colorizer,
    sketch: str,
    out: str,
    *,
    hints: str | None = None,
    hint_points: str | None = None,
    size: int | None = None,
    point_size: int = hints_lib.INFERENCE_POINT_SIZE,
    reference: str | None = None,
) -> list[pathlib.Path]:
    """Colorizes every sketch matching `sketch`; returns the written image paths.

    `reference`: the colour image a reference-guided model takes its colours from (required
    for those models, refused for the others).
    """
    clicks = check_options(
        model,
        hints=hints is not None,
        hint_points=hint_points,
        reference=reference is not None,
        size=size,
        point_size=point_size,
    )
    sketches = expand_sketches(sketch)
    outputs = output_paths(sketches, out)
    hint_files = [hints_for(path, hints) for path in sketches]  # fail before the slow part
    reference_u8 = None
    if reference is not None:
        reference_u8 = reference_image(reference, model.image_size)
    for path, hint_file, dest in zip(sketches, hint_files, outputs, strict=True):
        image = read_image(path, "Sketch")
        hint_image = None if hint_file is None else read_image(hint_file, "Hints image")
        sketch_u8, hint_u8 = prepare_inputs(
            model,
            image,
            hint_image=hint_image,
            clicks=clicks,
            size=size,
            point_size=point_size,
            sketch_name=f"sketch {path}",
            hints_name=f"Hints image {hint_file}",
        )
        rgb = model(sketch_u8, hint_u8, reference_u8)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(dest), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise InputError(f"Could not write {dest} (unsupported extension or not writable).")
    return outputs


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
    if hints and method == "none":
        raise InputError(
            "This model was trained without colour hints (data.hints='none'); drop --hints."
        )
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
            raise InputError("Give either --hints or --hint-points, not both.")
        _require_point_model(method)
    if point_size < 1:
        raise InputError(f"--point-size must be a positive number of pixels, got {point_size}.")
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
