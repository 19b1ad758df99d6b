"""Image file bytes -> uint8 RGB: the one place that decides what is converted and what is skipped.

Converted: grayscale and 1-bit (to RGB), palette, RGBA/LA/PA (composited on white paper, like
line art), CMYK/YCbCr/LAB, 16-bit, EXIF orientation (applied), images smaller than the crop
(the pipeline upscales them) and very large ones (JPEGs are decoded at a reduced scale when
`min_side` allows). Skipped, with the reason in a `BadImage`: empty and non-image files,
truncated or corrupt data, images larger than PIL's decompression-bomb limit and images under
`MIN_SIDE` pixels.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Anything narrower holds no drawing worth colouring, however far it is upscaled.
MIN_SIDE = 8
# How a file holds its picture: one colour image, or colour (left) and sketch (right) side by side.
LAYOUTS = ("single", "paired")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class BadImage(ValueError):
    """A file that cannot be used as a training image; the message says why."""


class TooManyPixels(BadImage):
    """An image whose header claims more pixels than allowed (PIL's bomb limit or the caller's
    `max_pixels`); raised before any pixel is decoded."""


def _open(data: bytes) -> Image.Image:
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Between PIL's warning and error limits (89M-179M px) the image is still decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadImage("not an image (unknown format or not an image file)") from None
    except Image.DecompressionBombError as e:
        raise TooManyPixels(f"too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImage(f"corrupt image header ({e})") from None


def _draft(image: Image.Image, min_side: int | None) -> None:
    """Lets libjpeg decode at 1/2, 1/4 or 1/8 scale while the short side stays >= min_side."""
    if not min_side or image.format != "JPEG":
        return
    w, h = image.size
    scale = min_side / min(w, h)
    if scale < 0.5:
        image.draft(image.mode, (max(1, int(w * scale + 0.999)), max(1, int(h * scale + 0.999))))


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL mode -> uint8 RGB (H, W, 3)."""
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = np.asarray(image.convert("RGBA"), np.float32)
        alpha = rgba[..., 3:] / 255.0
        # Transparent regions become white paper, like the line art the model will see.
        return np.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    if mode.startswith("I") or mode == "F":  # 16-bit (I;16*) or 32-bit integer / float gray
        gray = np.asarray(image, np.float32)
        if gray.max(initial=0.0) > 255.0:
            gray = gray / 257.0  # 16-bit range to 8-bit
        gray = np.clip(np.round(gray), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=-1))
    if mode != "RGB":  # L, 1, P, CMYK, YCbCr, LAB, HSV
        image = image.convert("RGB")
    return np.asarray(image, np.uint8)


def decode(
    data: bytes, *, min_side: int | None = None, max_pixels: int | None = None
) -> np.ndarray:
    """Decodes image bytes to uint8 RGB (H, W, 3) upright; raises `BadImage` saying why not.

    `min_side`: the smallest short side the caller needs; large JPEGs are decoded at the
    largest libjpeg reduction (1/2..1/8) that keeps at least that (much faster, same crop).
    `max_pixels`: refuse (`TooManyPixels`) an image whose header claims more, before decoding.
    """
    image = _open(data)
    w, h = image.size
    if max_pixels is not None and w * h > max_pixels:
        raise TooManyPixels(
            f"{w}x{h} px ({w * h:,} pixels) is over the limit of {max_pixels:,} pixels"
        )
    try:
        _draft(image, min_side)
        # Phone photos store "rotate 90" in EXIF instead of rotating the pixels.
        image = ImageOps.exif_transpose(image)
        image.load()
        rgb = _to_rgb(image)
    except BadImage:
        raise
    except Image.DecompressionBombError as e:
        raise TooManyPixels(f"too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImage(f"truncated or corrupt image data ({e})") from None
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise BadImage(f"only {w}x{h} px; images need at least {MIN_SIDE} px per side")
    return np.ascontiguousarray(rgb)


def split_paired(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A side-by-side pair (colour left, sketch right) -> (colour RGB, sketch uint8 (H, W, 1))."""
    h, w = image.shape[:2]
    half = w // 2
    if half < MIN_SIDE:
        raise BadImage(f"only {w}x{h} px; too narrow to hold a colour/sketch pair side by side")
    color = np.ascontiguousarray(image[:, :half])
    sketch = cv2.cvtColor(np.ascontiguousarray(image[:, half : 2 * half]), cv2.COLOR_RGB2GRAY)
    return color, sketch[..., None]
