"""Device (JAX) forms of the hint methods (jaxcolor/data/device_hints.py) against the host
methods (jaxcolor/data/hints.py): the same picture for the same draw, the same distribution
over many draws, and the HintSpec fields that link them.

Measured on SyntheticCartoonSource images (120 per size, at 256x256 and 96x128), the bounds
below leave room over those:
- palette, points: exact.
- blur: max |device - host| 2 grey levels (1 at 96x128), pixels more than 1 level apart
  <= 0.14 %, mean |difference| <= 0.24 (OpenCV's fixed-point kernels round differently).
- strokes, scribbles: hinted-pixel IoU per image >= 0.968 (mean 0.999), pixels that differ
  <= 0.02 % per image, colours identical wherever both draw; coverage (share of hinted pixels)
  0.00761 host vs 0.00760 device at 256 px.
"""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor.data import device_hints as D
from jaxcolor.data import hints as H
from jaxcolor.data.sources import SyntheticCartoonSource

SIZES = [(256, 256), (96, 128)]
KEY = jax.random.key(0)
BATCH = 12


def _images(hw, n, seed):
    source = SyntheticCartoonSource(n, hw, seed=seed)
    return np.stack([source[i] for i in range(n)])


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def _batched(form, images, samples=None):
    keys = jax.random.split(KEY, len(images))
    if samples is None:
        return np.asarray(jax.jit(jax.vmap(lambda x, k: form(x, None, k)))(images, keys))
    return np.asarray(jax.jit(jax.vmap(form))(images, samples, keys))


@pytest.fixture(scope="module", params=SIZES, ids=lambda hw: f"{hw[0]}x{hw[1]}")
def drawn(request):
    """BATCH cartoons of one size, each method's host draw (rng seed = index) and the device
    forms of the same draws."""
    hw = request.param
    images = _images(hw, BATCH, seed=hw[0])
    points = np.stack([H.point_sample(im, np.random.default_rng(i)) for i, im in enumerate(images)])
    strokes = np.stack(
        [H.stroke_sample(im, np.random.default_rng(i)) for i, im in enumerate(images)]
    )
    return {
        "hw": hw,
        "images": images,
        "point_samples": points,
        "stroke_samples": strokes,
        "blur": _batched(D.blur, images),
        "palette": _batched(D.palette, images),
        "points": _batched(D.points, images, points),
        "strokes": _batched(D.strokes, images, strokes),
        "scribbles": _batched(D.scribbles, images, strokes),
    }


# ---------------------------------------------------------------------------------------------
# (a) the same draw gives the same picture


def test_blur_is_within_two_levels_of_the_host(drawn):
    for image, device in zip(drawn["images"], drawn["blur"], strict=True):
        diff = np.abs(H.blur_hints(image).astype(int) - device.astype(int))
        assert diff.max() <= 2
        assert (diff > 1).mean() <= 0.005
        assert diff.mean() <= 0.3


def test_palette_is_exact(drawn):
    for image, device in zip(drawn["images"], drawn["palette"], strict=True):
        np.testing.assert_array_equal(device, H.palette_hints(image))


def test_palette_ties_and_missing_colours_as_the_host():
    """Bands with one colour (the missing planes repeat it) and with equally frequent colours
    (the smaller r, g, b key first)."""
    image = np.zeros((40, 30, 3), np.uint8)
    image[:10] = (200, 10, 10)  # band 0: one colour
    image[10:20, :15] = (0, 0, 255)  # band 1: two colours, 150 pixels each
    image[10:20, 15:] = (0, 255, 0)
    image[20:] = np.arange(30 * 20 * 3).reshape(20, 30, 3) % 256  # many colours, many ties
    device = np.asarray(jax.jit(lambda x: D.palette(x, None, KEY))(image))
    np.testing.assert_array_equal(device, H.palette_hints(image))


def test_points_are_exact(drawn):
    for image, sample, device in zip(
        drawn["images"], drawn["point_samples"], drawn["points"], strict=True
    ):
        np.testing.assert_array_equal(
            device, H.render_points(H.points_from_array(sample), image.shape[:2])
        )


def test_overlapping_points_at_the_border_later_ones_win():
    hw = (20, 24)
    points = [(0, 0, 9, 9, (10, 20, 30)), (5, 5, 8, 8, (40, 50, 60)), (11, 15, 20, 24, (1, 2, 3))]
    points += [(19, 23, 20, 24, (7, 8, 9)), (6, 6, 7, 7, (70, 80, 90))]
    sample = H.points_to_array(points)
    device = np.asarray(jax.jit(D.points)(np.zeros((*hw, 3), np.uint8), sample, KEY))
    np.testing.assert_array_equal(device, H.render_points(points, hw))


def _stroke_agreement(host, device):
    """host and device R, G, B, mask: IoU of the masks, share of pixels that differ, whether the
    colours agree wherever both draw."""
    a, b = host[..., 3] > 0, device[..., 3] > 0
    return _iou(a, b), (host != device).any(-1).mean(), bool((host[a & b] == device[a & b]).all())


def test_strokes_match_cv2_polylines(drawn):
    for sample, device in zip(drawn["stroke_samples"], drawn["strokes"], strict=True):
        host = H._render_strokes(H.strokes_from_array(sample), drawn["hw"])
        if not host[..., 3].any():
            assert not device[..., 3].any()
            continue
        iou, differ, same_colours = _stroke_agreement(host, device)
        assert iou >= 0.95 and differ <= 0.001 and same_colours, (iou, differ)


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 6, 9])
def test_polylines_of_every_width_and_direction(width):
    """Hand-drawn polylines in every direction (steep, shallow, 45 degrees, axis-aligned, a
    dab, slopes of exactly 1/2 where rounding ties), one width each, IoU against cv2, all
    strokes together and each alone. render_strokes is told these segments may span the whole
    image (its default window fits hints.sample_strokes' short steps)."""
    hw = (64, 72)
    rng = np.random.default_rng(width)
    lines = [
        np.array([[10, 10], [40, 10], [40, 30], [10, 50]]),
        np.array([[5, 5], [25, 15], [35, 35], [34, 60], [60, 60]]),
        np.array([[30, 30], [30, 30]]),
        np.array([[60, 5], [40, 25], [50, 45]]),
    ]
    lines += [rng.integers(0, 64, size=(int(rng.integers(2, 6)), 2)) for _ in range(6)]
    strokes = [(line.astype(np.int32), width, (20 * i, 100, 200)) for i, line in enumerate(lines)]
    render = jax.jit(D.render_strokes, static_argnums=(1, 2, 3))
    ious = []
    for start in range(0, len(strokes), H.MAX_STROKES):
        chunk = strokes[start : start + H.MAX_STROKES]
        host = H._render_strokes(chunk, hw)
        device = np.asarray(render(H.strokes_to_array(chunk), hw, max(hw), width))
        ious.append(_stroke_agreement(host, device)[0])
    # each stroke alone too: the union hides differences under later strokes (and where the
    # masks differ under an overlap, the pixel shows another stroke's colour)
    for stroke in strokes:
        host = H._render_strokes([stroke], hw)
        device = np.asarray(render(H.strokes_to_array([stroke]), hw, max(hw), width))
        iou, _, same_colours = _stroke_agreement(host, device)
        ious.append(iou)
        assert same_colours
    assert min(ious) >= 0.9 and np.mean(ious) >= 0.97, ious


def test_scribbles_are_the_device_strokes_on_paper(drawn):
    for image, i, device in zip(drawn["images"], range(BATCH), drawn["scribbles"], strict=True):
        np.testing.assert_array_equal(device, H.scribbles_on_paper(drawn["strokes"][i]))
        host = H.scribble_hints(image, np.random.default_rng(i))
        a, b = H._on_paper_pixels(host), H._on_paper_pixels(device)
        assert (host[a & b] == device[a & b]).all()
        assert _iou(a, b) >= 0.95 or not (a | b).any()


# ---------------------------------------------------------------------------------------------
# (b) the samplers draw the host methods' distribution


@pytest.mark.parametrize("hw", SIZES, ids=lambda hw: f"{hw[0]}x{hw[1]}")
def test_samplers_make_the_host_draw(hw):
    """With the same rng, the sample rendered on the host is the host method's picture, and the
    rng is left where the host method leaves it (the same random numbers were drawn)."""
    for i, image in enumerate(_images(hw, 8, seed=7)):
        rngs = [np.random.default_rng(i) for _ in range(5)]
        sample = H.point_sample(image, rngs[0])
        np.testing.assert_array_equal(
            H.render_points(H.points_from_array(sample), hw), H.point_hints(image, rngs[1])
        )
        assert sample.shape == H.hint_spec("points").sample_shape and sample.dtype == np.int32
        assert rngs[0].bit_generator.state == rngs[1].bit_generator.state
        sample = H.stroke_sample(image, rngs[2])
        rendered = H._render_strokes(H.strokes_from_array(sample), hw)
        np.testing.assert_array_equal(rendered, H.stroke_hints(image, rngs[3]))
        np.testing.assert_array_equal(
            H.scribbles_on_paper(rendered), H.scribble_hints(image, rngs[4])
        )
        assert sample.shape == H.hint_spec("strokes").sample_shape and sample.dtype == np.int32
        assert rngs[2].bit_generator.state == rngs[3].bit_generator.state
        assert rngs[2].bit_generator.state == rngs[4].bit_generator.state


def test_points_beyond_the_cap_keep_the_last_ones():
    points = [
        (i % 7, i % 5, i % 7 + 1, i % 5 + 1, (i % 256, 0, 0)) for i in range(H.MAX_POINTS + 9)
    ]
    sample = H.points_to_array(points)
    assert sample.shape == (H.MAX_POINTS, H.POINT_FIELDS) and sample[:, 7].all()
    assert H.points_from_array(sample) == points[9:]
    assert H.points_from_array(H.points_to_array(points[:3])) == points[:3]


def test_hint_coverage_over_many_draws():
    """200 draws at 96x128: the share of hinted pixels on device and on the host (strokes and
    scribbles within 2 % of each other; points identical), and the share of examples without a
    hint (1/8 by design, equal on both)."""
    hw, n = (96, 128), 200
    images = _images(hw, n, seed=11)
    point_samples = np.stack(
        [H.point_sample(im, np.random.default_rng(i)) for i, im in enumerate(images)]
    )
    stroke_samples = np.stack(
        [H.stroke_sample(im, np.random.default_rng(i)) for i, im in enumerate(images)]
    )
    device_points = _batched(D.points, images, point_samples)
    device_strokes = _batched(D.strokes, images, stroke_samples)
    host_points = np.stack(
        [H.point_hints(im, np.random.default_rng(i)) for i, im in enumerate(images)]
    )
    host_strokes = np.stack(
        [H.stroke_hints(im, np.random.default_rng(i)) for i, im in enumerate(images)]
    )
    for host, device, tolerance in [
        (host_points, device_points, 0.0),
        (host_strokes, device_strokes, 0.02),
    ]:
        host_cover, device_cover = (host[..., 3] > 0).mean(), (device[..., 3] > 0).mean()
        assert host_cover > 0
        assert abs(device_cover - host_cover) <= tolerance * host_cover, (host_cover, device_cover)
        empty_host = ~(host[..., 3] > 0).any(axis=(1, 2))
        empty_device = ~(device[..., 3] > 0).any(axis=(1, 2))
        np.testing.assert_array_equal(empty_host, empty_device)
        assert 0.05 <= empty_host.mean() <= 0.25  # P(no hint) = 1/8
    scribbles = np.asarray(jax.jit(jax.vmap(D.on_paper))(device_strokes))
    host_cover = H._on_paper_pixels(np.stack([H.scribbles_on_paper(h) for h in host_strokes]))
    assert abs(H._on_paper_pixels(scribbles).mean() - host_cover.mean()) <= 0.02 * host_cover.mean()


# ---------------------------------------------------------------------------------------------
# (c) every built-in method has a device form with its channels, under jit and vmap


def _builtins():
    return [m for m in H.methods() if H.hint_spec(m).make.__module__ == H.__name__]


def test_every_builtin_method_has_a_device_form_under_jit_and_vmap():
    assert set(_builtins()) >= {"blur", "points", "strokes", "scribbles", "palette", "none"}
    hw, n = (40, 56), 3
    images = _images(hw, n, seed=3)
    for method in _builtins():
        spec = H.hint_spec(method)
        form = H.device_form(method)
        assert form is not None, method
        samples = None
        if spec.sample is not None:
            samples = np.stack([spec.sample(im, np.random.default_rng(9)) for im in images])
            assert samples.shape == (n, *spec.sample_shape) and samples.dtype == np.int32
        out = _batched(form, images, samples)
        assert out.shape == (n, *hw, H.HINT_CHANNELS[method]) and out.dtype == np.uint8, method
        if method in ("points", "palette", "none"):  # the exact ones
            for image, device in zip(images, out, strict=True):
                host = H.make_hints(method, image, np.random.default_rng(9))
                np.testing.assert_array_equal(device, host)


def test_device_forms_take_traced_samples_per_example():
    """One jitted function over a batch whose examples have different stroke counts and
    widths: each example's picture is the one it gets alone."""
    hw = (48, 48)
    images = _images(hw, 4, seed=5)
    samples = np.stack(
        [H.stroke_sample(im, np.random.default_rng(i + 3)) for i, im in enumerate(images)]
    )
    batched = _batched(D.strokes, images, samples)
    alone = jax.jit(D.strokes)
    for image, sample, out in zip(images, samples, batched, strict=True):
        np.testing.assert_array_equal(out, np.asarray(alone(jnp.asarray(image), sample, KEY)))
        host = H._render_strokes(H.strokes_from_array(sample), hw)
        iou, _, same_colours = _stroke_agreement(host, out)
        assert (iou >= 0.95 or not host[..., 3].any()) and same_colours


def test_hints_module_imports_no_jax():
    """PyTorch inference imports jaxcolor.data.hints: the device forms are named by string and
    imported only by device_form."""
    code = (
        "import sys; from jaxcolor.data import hints as h; "
        "[h.hint_spec(m).device for m in h.methods()]; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'jax'], 'jax imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# (d) registered methods: the device field


def _toy_device(rgb, sample, key):
    del sample, key
    return 255 - rgb


def _toy_host(image, rng):
    return 255 - image


def _toy(**fields):
    return H.HintSpec(
        "toy_inverse",
        3,
        _toy_host,
        user_input=H.IMAGE,
        from_user=lambda image, hw: 255 - image,
        **fields,
    )


def test_registered_method_with_a_callable_device_form():
    spec = _toy(device=_toy_device)
    H.register(spec)
    try:
        form = H.device_form("toy_inverse")
        assert form is _toy_device
        images = _images((32, 32), 2, seed=1)
        np.testing.assert_array_equal(_batched(form, images), 255 - images)
    finally:
        H.unregister(spec)
    spec = _toy(device="jaxcolor.data.device_hints:blur")
    H.register(spec)
    try:
        assert H.device_form("toy_inverse") is D.blur
    finally:
        H.unregister(spec)
    spec = _toy()
    H.register(spec)
    try:
        assert H.device_form("toy_inverse") is None
    finally:
        H.unregister(spec)


@pytest.mark.parametrize(
    "fields",
    [
        {"device": _toy_device, "sample": H.point_sample},  # sample without sample_shape
        {"device": _toy_device, "sample_shape": (4, 2)},  # sample_shape without sample
        {"sample": H.point_sample, "sample_shape": (4, 2)},  # a sample without a device form
        {"device": "jaxcolor.data.device_hints.blur"},  # not module:function
    ],
)
def test_hint_spec_refuses_inconsistent_device_fields(fields):
    with pytest.raises(ValueError):
        _toy(**fields)
