"""Image file bytes -> uint8 RGB: the one place that decides what is converted and what is skipped.

Converted: grayscale and 1-bit (to RGB), palette, RGBA/LA/PA (composited on white paper, like
line art), CMYK/YCbCr/LAB, 16-bit, EXIF orientation (applied), images smaller than the crop
(the pipeline upscales them) and very large ones (JPEGs are decoded at a reduced scale when
`min_side` allows). Skipped, with the reason in a `BadImage`: empty and non-image files,
truncated or corrupt data, images larger than PIL's decompression-bomb limit and images under
`MIN_SIDE` pixels.

Plain files (8-bit RGB or grayscale JPEGs, 8-bit RGB PNGs without transparency or animation)
are decoded by OpenCV straight to RGB, at the libjpeg reduction PIL would use and with PIL's
EXIF orientation: the same libjpeg-turbo / libpng give the same pixels (tests/test_decode.py)
in 65-80% of PIL's time (fewer copies). That matters: decoding is most of the host's work per
training example. Anything else, and any file OpenCV cannot decode, goes through PIL, which
decides what is converted and what is skipped. Size limits are enforced before any pixel is
decoded: from a plain JPEG's own markers (`_plain_jpeg`), else from PIL's header.
"""

from __future__ import annotations

import io
import struct
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


def _reduction(width: int, height: int, min_side: int | None) -> int:
    """The libjpeg scale denominator (1, 2, 4 or 8) to decode a JPEG at: the largest that keeps
    the short side >= min_side, as PIL's `draft` picks it for the size `_draft` asks for."""
    if not min_side:
        return 1
    scale = min_side / min(width, height)
    if scale >= 0.5:
        return 1
    size = (max(1, int(width * scale + 0.999)), max(1, int(height * scale + 0.999)))
    fits = min(width // size[0], height // size[1])
    return next(d for d in (8, 4, 2, 1) if fits >= d)


def _draft(image: Image.Image, min_side: int | None) -> None:
    """Lets libjpeg decode at 1/2, 1/4 or 1/8 scale while the short side stays >= min_side."""
    if image.format != "JPEG":
        return
    w, h = image.size
    d = _reduction(w, h, min_side)
    if d > 1:
        image.draft(image.mode, (w // d, h // d))  # PIL picks d for this size: w // (w // d) < 2d


# --- the OpenCV path ------------------------------------------------------------------------
_REDUCED = {
    1: 0,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}  # ORed with IMREAD_COLOR_RGB: reduced RGB
_FLAGS = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION  # orientation: PIL's, below
_EXIF_KEYS = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")
# EXIF orientation -> the numpy view PIL's ImageOps.exif_transpose makes of the pixels.
_ORIENT = {
    2: lambda a: a[:, ::-1],  # FLIP_LEFT_RIGHT
    3: lambda a: a[::-1, ::-1],  # ROTATE_180
    4: lambda a: a[::-1],  # FLIP_TOP_BOTTOM
    5: lambda a: a.transpose(1, 0, 2),  # TRANSPOSE
    6: lambda a: a.transpose(1, 0, 2)[:, ::-1],  # ROTATE_270 (90 clockwise)
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # TRANSVERSE
    8: lambda a: a.transpose(1, 0, 2)[::-1],  # ROTATE_90 (90 counter-clockwise)
}
_PNG_BEFORE_IDAT_REFUSED = (b"tRNS", b"acTL", b"fcTL", b"eXIf")


def _plain_png(data: bytes) -> bool:
    """Whether a PNG's chunks hold nothing PIL would treat differently from libpng: no
    transparency, animation or EXIF, only image data after the first IDAT (PIL reads chunks
    there, text and EXIF included, only while decoding), and an IEND (not truncated)."""
    i, seen_idat, n = 8, False, len(data)
    while i + 8 <= n:
        (length,) = struct.unpack_from(">I", data, i)
        kind = data[i + 4 : i + 8]
        if kind == b"IEND":
            return seen_idat
        if kind == b"IDAT":
            seen_idat = True
        elif seen_idat or kind in _PNG_BEFORE_IDAT_REFUSED:
            return False
        i += 12 + length
    return False


# JPEG markers the header probe below reads: SOF0-2 (baseline, extended, progressive Huffman:
# what PIL opens as RGB or L through libjpeg), SOS (the pixels start), APP1 (EXIF or XMP: an
# orientation), APP2 (ICC, or MPF: an MPO file), APP14 (Adobe: maybe CMYK/YCCK).
_SOF = (0xC0, 0xC1, 0xC2)
_SOS, _APP1, _APP2, _APP14 = 0xDA, 0xE1, 0xE2, 0xEE


def _plain_jpeg(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a complete 8-bit RGB or grayscale JPEG without EXIF, XMP, MPF or Adobe
    segments, read from its markers alone (PIL's header parse costs ~0.15 ms, a sixth of the
    device path's host time per example); None for anything else, which goes through PIL."""
    if not (data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")):
        return None
    i, n, size = 2, len(data), None
    while i + 4 <= n and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        (length,) = struct.unpack_from(">H", data, i + 2)
        if marker in (_APP1, _APP14) or (marker == _APP2 and data[i + 4 : i + 7] == b"MPF"):
            return None
        if marker in _SOF:
            if i + 10 > n or data[i + 4] != 8 or data[i + 9] not in (1, 3):
                return None
            height, width = struct.unpack_from(">HH", data, i + 5)
            size = (width, height)
        elif 0xC3 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return None  # lossless, arithmetic or hierarchical: PIL decides
        if marker == _SOS:
            return size if size and min(size) > 0 else None
        i += 2 + length
    return None


def _decode_plain_jpeg(data: bytes, min_side: int | None, max_pixels: int | None):
    """The OpenCV decode of a `_plain_jpeg` (None when it is not one, or is large enough for
    PIL's decompression-bomb rules to apply), with the max_pixels check first."""
    size = _plain_jpeg(data)
    if size is None or size[0] * size[1] > Image.MAX_IMAGE_PIXELS:
        return None
    w, h = size
    if max_pixels is not None and w * h > max_pixels:
        raise TooManyPixels(
            f"{w}x{h} px ({w * h:,} pixels) is over the limit of {max_pixels:,} pixels"
        )
    d = _reduction(w, h, min_side)
    rgb = cv2.imdecode(np.frombuffer(data, np.uint8), _FLAGS | _REDUCED[d])
    if rgb is None or rgb.shape != (-(-h // d), -(-w // d), 3):
        return None
    return rgb


def _decode_fast(data: bytes, image: Image.Image, min_side: int | None) -> np.ndarray | None:
    """OpenCV's decode of a file that it decodes exactly as the PIL path would, else None."""
    if image.format == "JPEG":
        # PIL also decodes L and RGB JPEGs with libjpeg-turbo (ISLOW IDCT, fancy upsampling).
        # A JPEG ends with EOI; a truncated one goes to PIL, which says so.
        if image.mode not in ("RGB", "L") or not data.endswith(b"\xff\xd9"):
            return None
        d = _reduction(*image.size, min_side)
    elif image.format == "PNG":
        # Palette, gray, alpha, 16-bit (PIL keeps the high byte), EXIF (PIL reads a PNG's EXIF
        # only by decoding it) go to PIL.
        if image.mode != "RGB" or image.tile[0].args != "RGB" or not _plain_png(data):
            return None
        if any(k in image.info for k in _EXIF_KEYS):
            return None
        d = 1
    else:
        return None
    orientation = 1
    if any(k in image.info for k in _EXIF_KEYS):
        try:  # a JPEG's EXIF and XMP are read with its header
            orientation = image.getexif().get(0x0112, 1)
        except Exception:  # malformed EXIF: the PIL path says what it makes of it
            return None
    rgb = cv2.imdecode(np.frombuffer(data, np.uint8), _FLAGS | _REDUCED[d])
    w, h = image.size
    if rgb is None or rgb.shape != (-(-h // d), -(-w // d), 3):
        return None
    return _ORIENT.get(orientation, lambda a: a)(rgb)


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
    rgb = _decode_plain_jpeg(data, min_side, max_pixels)
    if rgb is None:
        image = _open(data)
        w, h = image.size
        if max_pixels is not None and w * h > max_pixels:
            raise TooManyPixels(
                f"{w}x{h} px ({w * h:,} pixels) is over the limit of {max_pixels:,} pixels"
            )
        rgb = _decode_fast(data, image, min_side)
        if rgb is None:
            rgb = _decode_pil(image, min_side)
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise BadImage(f"only {w}x{h} px; images need at least {MIN_SIDE} px per side")
    return np.ascontiguousarray(rgb)


def _decode_pil(image: Image.Image, min_side: int | None) -> np.ndarray:
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
    return rgb


def split_paired(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A side-by-side pair (colour left, sketch right) -> (colour RGB, sketch uint8 (H, W, 1))."""
    h, w = image.shape[:2]
    half = w // 2
    if half < MIN_SIDE:
        raise BadImage(f"only {w}x{h} px; too narrow to hold a colour/sketch pair side by side")
    color = np.ascontiguousarray(image[:, :half])
    sketch = cv2.cvtColor(np.ascontiguousarray(image[:, half : 2 * half]), cv2.COLOR_RGB2GRAY)
    return color, sketch[..., None]
