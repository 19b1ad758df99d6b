"""Writes one file of every awkward kind users' image folders hold (for decode/prepare tests)."""

from __future__ import annotations

import io
import pathlib
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

from jaxcolor.data.sources import SyntheticCartoonSource

# name -> None if the file must be converted and used, else a word its skip reason contains.
EXPECTED = {
    "good.jpg": None,
    "good.png": None,
    "gray.jpg": None,
    "palette.png": None,
    "palette_transparent.png": None,
    "rgba.png": None,
    "cmyk.jpg": None,
    "deep16.png": None,
    "gray16.png": None,
    "exif_rotated.jpg": None,
    "tiny.png": None,  # smaller than the crop: upscaled
    "large.jpg": None,
    "truncated.jpg": "truncated",
    "truncated.png": "truncated",
    "empty.jpg": "empty",
    "notes.png": "not an image",
    "bomb.png": "too large",
    "speck.png": "px",  # 4x5 px: below MIN_SIDE
}


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb, never decoded)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def write_bad_folder(folder: pathlib.Path, size: int = 96) -> dict[str, bytes]:
    """Writes every EXPECTED file into `folder`; returns name -> bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = SyntheticCartoonSource(1, size, seed=7)[0]
    pil = Image.fromarray(rgb)
    gray = np.asarray(pil.convert("L"))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[: size // 2, :, 3] = 0  # top half transparent
    tall = np.ascontiguousarray(rgb[:, : size // 2])  # non-square: shows the EXIF rotation
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 clockwise to display
    good_jpg = _save(pil, "JPEG", quality=92)
    good_png = _save(pil, "PNG")
    deep = (rgb.astype(np.uint16) * 257)[..., ::-1]  # BGR for cv2
    files = {
        "good.jpg": good_jpg,
        "good.png": good_png,
        "gray.jpg": _save(Image.fromarray(gray), "JPEG"),
        "palette.png": _save(pil.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "palette_transparent.png": _save(
            pil.convert("P", palette=Image.Palette.ADAPTIVE), "PNG", transparency=0
        ),
        "rgba.png": _save(Image.fromarray(rgba, "RGBA"), "PNG"),
        "cmyk.jpg": _save(pil.convert("CMYK"), "JPEG"),
        "deep16.png": cv2.imencode(".png", deep)[1].tobytes(),
        "gray16.png": cv2.imencode(".png", gray.astype(np.uint16) * 257)[1].tobytes(),
        "exif_rotated.jpg": _save(Image.fromarray(tall), "JPEG", exif=exif),
        "tiny.png": _save(pil.resize((12, 10)), "PNG"),
        "large.jpg": _save(pil.resize((2400, 1800)), "JPEG", quality=80),
        "truncated.jpg": good_jpg[: len(good_jpg) // 2],
        "truncated.png": good_png[: len(good_png) // 2],
        "empty.jpg": b"",
        "notes.png": b"meeting notes, saved with the wrong extension\n" * 20,
        "bomb.png": png_claiming(40_000, 40_000),
        "speck.png": _save(pil.resize((4, 5)), "PNG"),
    }
    assert set(files) == set(EXPECTED)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files
