"""decode's OpenCV path gives what the PIL path gives (pixels, size, orientation, what is skipped);
crop_resize leaves an image that is already the right size alone."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from bad_images import write_bad_folder
from PIL import Image

from jaxcolor.data import crop, decode
from jaxcolor.data.sources import SyntheticCartoonSource


def _save(image: np.ndarray | Image.Image, fmt: str, **kwargs) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _cv2_jpeg(rgb: np.ndarray, quality: int = 90, **params) -> bytes:
    flags = [cv2.IMWRITE_JPEG_QUALITY, quality]
    for key, value in params.items():
        flags += [getattr(cv2, key), value]
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), flags)[1].tobytes()


@pytest.fixture(scope="module")
def cartoon() -> np.ndarray:
    return SyntheticCartoonSource(1, (160, 224), seed=5)[0]  # non-square: shows orientation


def _pil_path(data: bytes, monkeypatch, **kwargs) -> np.ndarray:
    """What decode made of `data` before the OpenCV path (PIL only)."""
    with monkeypatch.context() as m:
        m.setattr(decode, "_decode_fast", lambda *a: None)
        m.setattr(decode, "_decode_plain_jpeg", lambda *a: None)
        return decode.decode(data, **kwargs)


def _fast_path(data: bytes, monkeypatch, **kwargs) -> np.ndarray:
    """decode, failing if it went through PIL's decoder instead of OpenCV."""

    def refuse(*a):
        raise AssertionError("decoded by PIL, not by the OpenCV path")

    with monkeypatch.context() as m:
        m.setattr(decode, "_decode_pil", refuse)
        return decode.decode(data, **kwargs)


def _fast_is_refused(data: bytes, min_side: int | None = None) -> bool:
    return decode._decode_fast(data, decode._open(data), min_side) is None


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def test_plain_jpegs_and_pngs_decode_to_the_same_pixels_as_pil(cartoon, monkeypatch):
    # Measured: identical pixels (max difference 0) for every case, also on 50 real anime JPEGs
    # (Pillow bundles libjpeg-turbo 3.2, opencv-python 3.1; same IDCT and upsampling).
    gray = cv2.cvtColor(cartoon, cv2.COLOR_RGB2GRAY)
    files = {
        "jpeg 4:2:0 q90": _cv2_jpeg(cartoon),
        "jpeg 4:4:4 (PIL)": _save(cartoon, "JPEG", quality=95, subsampling=0),
        "jpeg 4:2:2 (PIL)": _save(cartoon, "JPEG", quality=75, subsampling=1),
        "jpeg progressive": _cv2_jpeg(cartoon, IMWRITE_JPEG_PROGRESSIVE=1),
        "jpeg optimized": _save(cartoon, "JPEG", optimize=True),
        "jpeg restart markers": _cv2_jpeg(cartoon, IMWRITE_JPEG_RST_INTERVAL=4),
        "jpeg grayscale": cv2.imencode(".jpg", gray)[1].tobytes(),
        "jpeg q60": _cv2_jpeg(cartoon, 60),
        "png (cv2)": cv2.imencode(".png", cv2.cvtColor(cartoon, cv2.COLOR_RGB2BGR))[1].tobytes(),
        "png (PIL, text chunk)": _save(cartoon, "PNG", pnginfo=_text("Software", "paint")),
    }
    for name, data in files.items():
        for min_side in (None, 32, 80):
            fast = _fast_path(data, monkeypatch, min_side=min_side)
            np.testing.assert_array_equal(fast, _pil_path(data, monkeypatch, min_side=min_side))
            assert fast.flags.c_contiguous and fast.dtype == np.uint8, name


def _text(key: str, value: str):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pil_applies_it(cartoon, monkeypatch, orientation):
    data = _save(cartoon, "JPEG", quality=92, exif=_exif(orientation))
    fast = _fast_path(data, monkeypatch)
    np.testing.assert_array_equal(fast, _pil_path(data, monkeypatch))
    wide = orientation in (1, 2, 3, 4)
    assert fast.shape == ((160, 224, 3) if wide else (224, 160, 3))
    # Reduced-scale decoding rotates the reduced image the same way.
    reduced = _fast_path(data, monkeypatch, min_side=40)
    np.testing.assert_array_equal(reduced, _pil_path(data, monkeypatch, min_side=40))
    assert min(reduced.shape[:2]) == 40


def test_xmp_orientation_is_applied_as_pil_applies_it(cartoon, monkeypatch):
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
        b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    )
    data = _save(cartoon, "JPEG", xmp=xmp)
    fast = _fast_path(data, monkeypatch)
    assert fast.shape == (224, 160, 3)
    np.testing.assert_array_equal(fast, _pil_path(data, monkeypatch))


def test_reduced_scale_matches_pils_draft_for_every_size_and_need(monkeypatch):
    for w, h in [(517, 301), (2400, 1800), (64, 1000), (255, 257), (96, 96)]:
        base = SyntheticCartoonSource(1, 64, seed=1)[0]
        image = cv2.resize(base, (w, h), interpolation=cv2.INTER_LINEAR)
        data = _cv2_jpeg(image, 85)
        for min_side in sorted({8, 9, 12, 31, 32, 33, 50, 100, 150, min(w, h)}):
            fast = _fast_path(data, monkeypatch, min_side=min_side)
            pil = _pil_path(data, monkeypatch, min_side=min_side)
            np.testing.assert_array_equal(fast, pil)
            assert min(fast.shape[:2]) >= min(min_side, w, h)
            denominator = decode._reduction(w, h, min_side)
            assert fast.shape[:2] == (-(-h // denominator), -(-w // denominator))
    # The largest reduction that keeps the side: 2400x1800 needing 300 px -> 1/4 (450 px).
    assert decode._reduction(2400, 1800, 300) == 4
    assert decode._reduction(2400, 1800, 1000) == 1
    assert decode._reduction(2400, 1800, None) == 1


def test_what_the_pil_path_skips_or_converts_goes_there(tmp_path, cartoon, monkeypatch):
    files = write_bad_folder(tmp_path)
    for name in ["good.jpg", "good.png", "gray.jpg", "exif_rotated.jpg", "large.jpg"]:
        assert not _fast_is_refused(files[name]), name
    for name in [
        "cmyk.jpg",
        "palette.png",
        "palette_transparent.png",
        "rgba.png",
        "deep16.png",
        "gray16.png",
    ]:
        assert _fast_is_refused(files[name]), name
    # Truncated files: OpenCV is never asked (a JPEG without EOI, a PNG without IEND), and the
    # PIL path names the truncation as before.
    for name in ["truncated.jpg", "truncated.png"]:
        assert _fast_is_refused(files[name]), name
        with pytest.raises(decode.BadImage, match="truncated"):
            decode.decode(files[name])
    # Truncated anywhere, a JPEG is refused by the OpenCV path and skipped by PIL's.
    jpeg = _cv2_jpeg(cartoon)
    for cut in (0.2, 0.5, 0.9, 0.999):
        data = jpeg[: int(len(jpeg) * cut)]
        assert _fast_is_refused(data)
        with pytest.raises(decode.BadImage, match="truncated"):
            decode.decode(data)
    # Bytes after a JPEG's EOI: PIL's (it decodes it).
    padded = jpeg + b"\0" * 16
    assert _fast_is_refused(padded)
    np.testing.assert_array_equal(decode.decode(padded), decode.decode(jpeg))
    # A PNG with a transparent colour key, or with chunks PIL reads only while decoding (text
    # after the image data), is PIL's.
    png = cv2.imencode(".png", cv2.cvtColor(cartoon, cv2.COLOR_RGB2BGR))[1].tobytes()
    iend = png.rindex(b"IEND") - 4
    after = png[:iend] + _chunk(b"tEXt", b"Comment\0late") + png[iend:]
    assert _fast_is_refused(after)
    np.testing.assert_array_equal(decode.decode(after), cartoon)
    keyed = _save(cartoon, "PNG", transparency=(0, 0, 0))
    assert _fast_is_refused(keyed)
    # Below MIN_SIDE: the OpenCV path decodes it and decode still refuses it.
    speck = _cv2_jpeg(cv2.resize(cartoon, (40, 6)))
    assert not _fast_is_refused(speck)
    with pytest.raises(decode.BadImage, match="px"):
        decode.decode(speck)


def test_plain_jpegs_skip_pils_header_and_the_rest_go_to_pil(tmp_path, cartoon, monkeypatch):
    files = write_bad_folder(tmp_path)
    for name in ["good.jpg", "gray.jpg", "large.jpg"]:
        assert decode._plain_jpeg(files[name]) == Image.open(io.BytesIO(files[name])).size, name
    # EXIF (an orientation), Adobe (CMYK), truncated, padded, progressive-but-not-JPEG: PIL's.
    for name in ["exif_rotated.jpg", "cmyk.jpg", "truncated.jpg", "good.png"]:
        assert decode._plain_jpeg(files[name]) is None, name
    jpeg = _cv2_jpeg(cartoon)
    assert decode._plain_jpeg(jpeg + b"\0") is None
    assert decode._plain_jpeg(_cv2_jpeg(cartoon, IMWRITE_JPEG_PROGRESSIVE=1)) == (224, 160)

    # A plain JPEG never opens PIL, and decodes to the pixels PIL's path gives.
    def no_pil(*a):
        raise AssertionError("opened with PIL")

    want = _pil_path(jpeg, monkeypatch, min_side=40)
    with monkeypatch.context() as m:
        m.setattr(decode, "_open", no_pil)
        np.testing.assert_array_equal(decode.decode(jpeg, min_side=40), want)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_sizes_are_refused_from_the_header_before_any_decoding(tmp_path, monkeypatch):
    files = write_bad_folder(tmp_path)

    def refuse(*a, **k):
        raise AssertionError("decoded pixels of an image refused by its header")

    monkeypatch.setattr(decode.cv2, "imdecode", refuse)
    monkeypatch.setattr(decode, "_decode_pil", refuse)
    with pytest.raises(decode.TooManyPixels, match="over the limit of 1,000,000"):
        decode.decode(files["large.jpg"], max_pixels=1_000_000)  # 2400 x 1800
    with pytest.raises(decode.TooManyPixels, match="too large"):
        decode.decode(files["bomb.png"])  # 40,000 x 40,000 claimed: over PIL's bomb limit


def test_crop_resize_only_crops_an_image_already_at_the_crop_margin(monkeypatch):
    image = np.random.default_rng(3).integers(0, 256, (286, 300, 3), np.uint8)  # crop 256 (286)
    # What crop_resize returned before: a same-size resize (INTER_CUBIC) is the identity, so
    # skipping it changes nothing but the time.
    same = cv2.resize(image, (300, 286), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(same, image)
    expected = []
    for s in range(4):
        rng = np.random.default_rng(s)
        y, x = int(rng.integers(0, 286 - 256 + 1)), int(rng.integers(0, 300 - 256 + 1))
        expected.append(image[y : y + 256, x : x + 256])

    def refuse(*a, **k):
        raise AssertionError("resized an image that already has the size")

    monkeypatch.setattr(crop.cv2, "resize", refuse)
    for s in range(4):
        got = crop.crop_resize(image, 256, np.random.default_rng(s))
        np.testing.assert_array_equal(got, expected[s])
        assert got.shape == (256, 256, 3)
    # Evaluation at the stored size: the centre crop, unresized.
    centre = crop.crop_resize(image[:, :256], 256, None)
    np.testing.assert_array_equal(centre, image[15:271, :256])
    # A 2-D image still comes back with one channel.
    assert crop.crop_resize(image[:256, :256, 0], 256, None).shape == (256, 256, 1)
