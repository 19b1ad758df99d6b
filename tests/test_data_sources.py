"""Behaviour tests for image sources, XDoG sketches and colour hints."""

import pickle

import cv2
import numpy as np
import pytest

from jaxcolor.data.decode import BadImage, decode
from jaxcolor.data.hints import HINT_CHANNELS, blur_hints, make_hints
from jaxcolor.data.sketch import xdog
from jaxcolor.data.sources import ImageFolderSource, SyntheticCartoonSource


def _roughness(image: np.ndarray) -> float:
    """Mean squared difference between neighbouring pixels (blurring a step edge lowers it)."""
    x = image.astype(np.float32)
    return float((np.diff(x, axis=0) ** 2).mean() + (np.diff(x, axis=1) ** 2).mean())


# --- SyntheticCartoonSource -------------------------------------------------------------------


def test_synthetic_is_deterministic_per_seed_and_index():
    source = SyntheticCartoonSource(10, 64, seed=3)
    again = SyntheticCartoonSource(10, 64, seed=3)
    np.testing.assert_array_equal(source[4], source[4])
    np.testing.assert_array_equal(source[4], again[4])
    assert not np.array_equal(source[4], source[5])
    assert not np.array_equal(source[4], SyntheticCartoonSource(10, 64, seed=4)[4])


@pytest.mark.parametrize(
    "size, shape", [(64, (64, 64, 3)), ((48, 80), (48, 80, 3)), (16, (16, 16, 3))]
)
def test_synthetic_shape_and_dtype(size, shape):
    source = SyntheticCartoonSource(3, size)
    assert len(source) == 3
    image = source[2]
    assert image.shape == shape
    assert image.dtype == np.uint8


def test_synthetic_has_colour_variety():
    source = SyntheticCartoonSource(6, 64, seed=0)
    hues = []
    for i in range(len(source)):
        image = source[i]
        quantized = image.reshape(-1, 3) // 32
        _, counts = np.unique(quantized, axis=0, return_counts=True)
        assert len(counts) >= 8, f"image {i} has only {len(counts)} colour buckets"
        assert counts.max() / counts.sum() < 0.8, f"image {i} is mostly one colour"
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).reshape(-1, 3)
        saturated = hsv[hsv[:, 1] > 100]
        assert len(saturated) > 0.05 * len(hsv), f"image {i} has no saturated shapes"
        hues.extend(np.unique(saturated[:, 0] // 15).tolist())
    # Shapes across the dataset should span most of the colour wheel (12 hue bins).
    assert len(set(hues)) >= 8


def test_synthetic_images_have_dark_outlines():
    source = SyntheticCartoonSource(4, 128, seed=1)
    for i in range(len(source)):
        sketch = xdog(source[i])
        dark = float((sketch < 128).mean())
        assert 0.01 < dark < 0.4, f"image {i}: {dark:.3f} of the sketch is dark"


def test_synthetic_pickle_round_trip():
    source = SyntheticCartoonSource(5, (32, 40), seed=7)
    clone = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(clone[2], source[2])
    assert "seed=7" in repr(clone)


def test_synthetic_rejects_bad_arguments():
    source = SyntheticCartoonSource(2, 32)
    with pytest.raises(IndexError):
        source[2]
    with pytest.raises(ValueError, match="num_records"):
        SyntheticCartoonSource(0, 32)
    with pytest.raises(ValueError, match="image_size"):
        SyntheticCartoonSource(2, 8)
    with pytest.raises(ValueError, match="image_size"):
        SyntheticCartoonSource(2, (32, 12))


# --- ImageFolderSource and decode ---------------------------------------------------------------


def _write_image(path, size=(12, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)


@pytest.fixture
def image_folder(tmp_path):
    _write_image(tmp_path / "a.jpg")
    _write_image(tmp_path / "sub" / "B.PNG")
    _write_image(tmp_path / "sub" / "deeper" / "c.webp")
    (tmp_path / "sub" / "notes.txt").write_text("not an image")
    return tmp_path


def test_image_folder_finds_nested_images(image_folder):
    source = ImageFolderSource(image_folder)
    names = [p.rsplit("/", 1)[-1] for p in source.paths]
    assert sorted(names) == ["B.PNG", "a.jpg", "c.webp"]
    assert source.paths == sorted(source.paths)
    assert len(source) == 3
    for i in range(len(source)):
        record = source[i]
        assert record["path"] == source.paths[i]
        image = decode(record["bytes"])
        assert image.shape == (12, 16, 3) and image.dtype == np.uint8
    with pytest.raises(IndexError):
        source[3]


def test_image_folder_errors_are_actionable(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="config.data.source=folder:") as info:
        ImageFolderSource(missing)
    assert str(missing) in str(info.value)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"\.png") as info:
        ImageFolderSource(tmp_path / "empty")
    assert "empty" in str(info.value)


def test_decode_handles_garbage_gray_and_alpha():
    with pytest.raises(BadImage, match="not an image"):
        decode(b"definitely not an image")
    with pytest.raises(BadImage, match="empty"):
        decode(b"")

    gray = np.arange(80, dtype=np.uint8).reshape(8, 10) * 3
    rgb = decode(cv2.imencode(".png", gray)[1].tobytes())
    assert rgb.shape == (8, 10, 3)
    np.testing.assert_array_equal(rgb[..., 0], gray)
    np.testing.assert_array_equal(rgb[..., 2], gray)

    bgra = np.zeros((8, 8, 4), np.uint8)
    bgra[0, 0] = (0, 0, 255, 255)  # opaque red (BGR order on disk)
    bgra[0, 1] = (255, 0, 0, 0)  # fully transparent blue
    rgb = decode(cv2.imencode(".png", bgra)[1].tobytes())
    assert rgb.shape == (8, 8, 3)
    np.testing.assert_array_equal(rgb[0, 0], (255, 0, 0))
    np.testing.assert_array_equal(rgb[0, 1], (255, 255, 255))

    deep = np.full((8, 8, 3), 65535, np.uint16)
    deep[0, 0] = (0, 0, 0)
    rgb = decode(cv2.imencode(".png", deep)[1].tobytes())
    assert rgb.dtype == np.uint8
    assert rgb[1, 1].tolist() == [255, 255, 255] and rgb[0, 0].tolist() == [0, 0, 0]


def test_split_sizes_and_determinism(tmp_path):
    for i in range(10):
        _write_image(tmp_path / f"img{i:02d}.png", size=(2, 2))
    source = ImageFolderSource(tmp_path)
    train, val = source.split(0.2, seed=0)
    assert (len(train), len(val)) == (8, 2)
    assert set(train.paths).isdisjoint(val.paths)
    assert sorted(train.paths + val.paths) == source.paths
    again_train, again_val = source.split(0.2, seed=0)
    assert (again_train.paths, again_val.paths) == (train.paths, val.paths)
    vals = {tuple(source.split(0.2, seed=s)[1].paths) for s in range(5)}
    assert len(vals) > 1, "the seed does not change the split"
    # A tiny fraction still leaves one validation image; a huge one still leaves training data.
    assert len(source.split(0.01, seed=0)[1]) == 1
    assert len(source.split(0.99, seed=0)[0]) == 1
    assert len(source.split(0.0, seed=0)[0]) == 10


def test_split_single_image_serves_both(tmp_path):
    _write_image(tmp_path / "only.jpg")
    train, val = ImageFolderSource(tmp_path).split(0.1, seed=0)
    assert train.paths == val.paths == ImageFolderSource(tmp_path).paths


# --- hints ------------------------------------------------------------------------------------


def test_blur_hints_are_smooth_colour_cues():
    image = SyntheticCartoonSource(1, 64, seed=2)[0]
    hints = blur_hints(image)
    assert hints.shape == image.shape and hints.dtype == np.uint8
    assert _roughness(hints) < 0.05 * _roughness(image)
    # Blurring keeps the average colour: the cue still says which colours go where.
    np.testing.assert_allclose(hints.mean((0, 1)), image.mean((0, 1)), atol=8)


@pytest.mark.parametrize("size", [256, 512])
def test_blur_hints_match_a_full_size_gaussian(size):
    image = SyntheticCartoonSource(1, size, seed=4)[0]
    exact = cv2.GaussianBlur(image, (0, 0), 20.0 * size / 256).astype(int)
    diff = np.abs(blur_hints(image).astype(int) - exact)
    assert diff.mean() < 1.5 and diff[16:-16, 16:-16].max() <= 10


def _edge_width(size: int) -> int:
    """Width in pixels of the blurred ramp across a black/white vertical edge."""
    image = np.zeros((size, size, 3), np.uint8)
    image[:, size // 2 :] = 255
    row = blur_hints(image)[size // 2, :, 0].astype(int)
    return int(((row > 25) & (row < 230)).sum())


def test_blur_hints_sigma_scales_with_image_size():
    ratio = _edge_width(256) / _edge_width(64)
    assert 3.0 < ratio < 5.0


def test_make_hints_dispatch():
    image = SyntheticCartoonSource(1, (32, 48))[0]
    assert make_hints("blur", image).shape == (32, 48, HINT_CHANNELS["blur"])
    none = make_hints("none", image)
    assert none.shape == (32, 48, 0) and none.dtype == np.uint8
    with pytest.raises(ValueError, match="data.hints"):
        make_hints("scribble", image)


def test_xdog_is_white_paper_with_dark_lines():
    image = np.full((64, 64, 3), 230, np.uint8)
    cv2.rectangle(image, (16, 16), (48, 48), (20, 20, 20), 2)
    sketch = xdog(image)
    assert sketch.shape == (64, 64, 1) and sketch.dtype == np.uint8
    assert sketch[2, 2, 0] == 255 and sketch[32, 32, 0] == 255
    assert sketch[16, 32, 0] < 64
    np.testing.assert_array_equal(sketch, xdog(image))


def test_make_sketch_dispatches_by_name_and_rejects_unknown_methods():
    from jaxcolor.data.sketch import make_sketch, xdog

    image = SyntheticCartoonSource(1, 64, seed=3)[0]
    np.testing.assert_array_equal(make_sketch("xdog", image), xdog(image))
    with pytest.raises(ValueError, match="data.sketch"):
        make_sketch("pencil", image)
