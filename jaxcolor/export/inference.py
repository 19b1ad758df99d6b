"""Colorize sketches with an exported generator in PyTorch; imports no JAX.

The inputs are prepared exactly as in training (jaxcolor.nets.inputs.model_inputs): the sketch
as one grayscale channel, then the hint channels made by the same jaxcolor.data.hints function,
all scaled from uint8 to [-1, 1]. Every image file (sketch, hints, reference) is decoded by
training's decoder, jaxcolor.data.decode. Any size works: the image is padded to a multiple of
2**num_downs and the output cropped back.
"""

from __future__ import annotations

import dataclasses
import glob
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
_POINT = re.compile(r"^\s*(\d+)\s*,\s*(\d+)\s*,\s*#([0-9a-fA-F]{6})\s*$")


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
        condition = np.concatenate([sketch, hint_channels], axis=-1)
        x = torch.from_numpy(condition).to(self.device).permute(2, 0, 1)[None].float()
        x = x / 127.5 - 1.0
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.multiple)
        inputs = [x]
        if self.takes_reference:
            if reference is None:
                raise InputError(
                    "This model is reference-guided: pass --reference IMAGE, a colour image "
                    "whose colours the result takes."
                )
            r = torch.from_numpy(np.ascontiguousarray(reference)).to(self.device)
            inputs.append(r.permute(2, 0, 1)[None].float() / 127.5 - 1.0)
        with torch.inference_mode():
            y = self.generator(*inputs)
        top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
        y = y[0, :, top : top + h, left : left + w]
        y = ((y + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return y.permute(1, 2, 0).cpu().numpy()


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
    if config.get("task", "colorize") != "colorize":
        raise InputError(
            f"{model_dir} is a sketch extractor (task={config['task']!r}: colour image in, "
            "sketch out), not a colorizer; train a colorizer with "
            f"--config.data.sketch='model:{model_dir}' to use it."
        )
    return Colorizer(generator, config, dev)


def read_image(path: str | pathlib.Path, what: str) -> np.ndarray:
    """Any image file -> uint8 RGB (H, W, 3), decoded by training's decoder (data.decode):
    EXIF orientation applied, alpha composited on white, grayscale, palette, CMYK and 16-bit
    converted, so colorize sees a file as training would have."""
    path = pathlib.Path(path)
    if not path.exists():
        raise InputError(f"{what} {path} does not exist.")
    if not path.is_file():
        raise InputError(f"{what} {path} is not a file.")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{what} {path} cannot be read: {e.strerror or e}.") from None
    try:
        return decode_lib.decode(data)
    except decode_lib.BadImage as e:
        raise InputError(
            f"{what} {path} is not an image colorize can use: {e}; give a PNG, JPEG, WebP, BMP "
            f"or TIFF image of at least {decode_lib.MIN_SIDE} px per side."
        ) from None


def to_sketch(image: np.ndarray) -> np.ndarray:
    """RGB -> grayscale (H, W, 1) line art, as the training sketch (cv2's RGB -> gray weights;
    a gray image stored as RGB keeps its values)."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]


def resize_short_side(image: np.ndarray, size: int | None, *, nearest: bool = False) -> np.ndarray:
    """Scales so the shorter side is `size` (None: unchanged); keeps (H, W, C).

    `nearest` keeps exact colours (hint drawings: no blended colours at a stroke's edge).
    """
    h, w = image.shape[:2]
    if size is None or min(h, w) == size:
        return image
    scale = size / min(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    out = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_NEAREST if nearest else interp)
    return out.reshape(nh, nw, image.shape[-1])


def parse_hint_points(text: str) -> list[tuple[int, int, tuple[int, int, int]]]:
    """ "x,y,#rrggbb;x,y,#rrggbb" -> [(x, y, (r, g, b)), ...]."""
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


# What --hints means for each data.hints method (used in messages and the README).
HINTS_IMAGE = {
    "blur": "a colour image of the sketch's size (rough colours over the sketch; blurred here)",
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
    """The hint channels for one sketch, made by the training functions for `method`.

    - blur: the hint image (the sketch's size) is resized with the sketch to the model's working
      size and only then blurred, as training blurs at the training size.
    - points, strokes: the drawing (the sketch's size) is resized nearest-neighbour; pixels
      with every channel above hints.PAPER_LEVEL are paper, all others are hints of their own
      colour with mask 255 (hints.hints_from_drawing).
    - scribbles: the same drawing, paper made pure white and no mask
      (hints.scribbles_from_drawing).
    - palette: any reference image; hints.palette_colors of it, rendered at the working size.
    """
    if method == "none":
        if hints_path is not None:
            raise InputError(
                "This model was trained without colour hints (data.hints='none'); drop --hints."
            )
        return np.zeros((*model_hw, 0), np.uint8)
    if hints_path is None:
        also = ' or --hint-points "x,y,#rrggbb;..."' if method in POINT_METHODS else ""
        raise InputError(
            f"This model takes colour hints (data.hints={method!r}): pass --hints IMAGE, "
            f"{HINTS_IMAGE[method]}{also}."
        )
    # A grayscale file is used as its gray RGB, as training uses a grayscale colour image.
    image = read_image(hints_path, "Hints image")
    if method == "palette":
        return hints_lib.render_palette(hints_lib.palette_colors(image), model_hw)
    if image.shape[:2] != original_hw:
        raise InputError(
            f"Hints image {hints_path} is {image.shape[1]}x{image.shape[0]} but sketch "
            f"{sketch_path} is {original_hw[1]}x{original_hw[0]}; they must be the same size."
        )
    if method in POINT_METHODS:
        drawing = resize_short_side(image, min(model_hw), nearest=True)
        if method == "scribbles":
            return hints_lib.scribbles_from_drawing(drawing)
        return hints_lib.hints_from_drawing(drawing)
    return hints_lib.make_hints(method, resize_short_side(image, min(model_hw)))


def reference_image(path: str | pathlib.Path, size: int | Sequence[int]) -> np.ndarray:
    """--reference -> uint8 (h, w, 3) RGB at the training image size (an int or (h, w)):
    scaled to cover it and centre-cropped by `crop_resize`, as validation makes the target's
    own view."""
    image = read_image(path, "Reference image")  # grayscale: its gray RGB, as in training
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
    sketch_path: pathlib.Path,
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
                f"--hint-points {x},{y} is outside sketch {sketch_path} ({w}x{h}); x must be in "
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
    method = model.hints
    if model.takes_reference and reference is None:
        raise InputError(
            f"This model is reference-guided (model.generator.name="
            f"{model.config['generator'].get('name')!r}): pass --reference IMAGE, a colour image "
            "whose colours the result takes."
        )
    if reference is not None and not model.takes_reference:
        raise InputError(
            "--reference is for reference-guided models; this model was trained without one."
        )
    clicks = None
    if hint_points is not None:
        clicks = parse_hint_points(hint_points)  # report a malformed list first
        if hints is not None:
            raise InputError("Give either --hints or --hint-points, not both.")
        _require_point_model(method)
    if point_size < 1:
        raise InputError(f"--point-size must be a positive number of pixels, got {point_size}.")
    if size is not None and size < 1:
        raise InputError(f"--size must be a positive number of pixels, got {size}.")
    sketches = expand_sketches(sketch)
    outputs = output_paths(sketches, out)
    hint_files = [hints_for(path, hints) for path in sketches]  # fail before the slow part
    reference_u8 = None
    if reference is not None:
        reference_u8 = reference_image(reference, model.image_size)
    for path, hint_file, dest in zip(sketches, hint_files, outputs, strict=True):
        image = read_image(path, "Sketch")
        sketch_u8 = resize_short_side(to_sketch(image), size)
        where = dict(sketch_path=path, original_hw=image.shape[:2], model_hw=sketch_u8.shape[:2])
        if clicks is not None:
            hint_u8 = point_hint_channels(method, clicks, point_size=point_size, **where)
        else:
            hint_u8 = hint_channels_for(method, hint_file, **where)
        rgb = model(sketch_u8, hint_u8, reference_u8)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(dest), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise InputError(f"Could not write {dest} (unsupported extension or not writable).")
    return outputs
