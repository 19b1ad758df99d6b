"""Device (JAX) sketches: the same data as the host's sketch.py, either way.

Fixed parameters: device == host up to float32 rounding. Measured on SyntheticCartoonSource
images at 256x256, 96x128 and 400x416 (OpenCV 4.14, JAX 0.10 on CPU): gray, hard-phi XDoG,
Otsu, erode, dilate and the intensity step are bit-identical; Sobel too but for one pixel in
166k at 400x416 (1 level); soft-phi XDoG and high-pass differ by at most 1 grey level on at
most 0.05 % of the pixels (values at a .5 rounding boundary). The asserted tolerances leave
room for other backends: at most 0.1 % of the pixels differ, and by at most 1 level (hard
XDoG: any difference, a pixel flipping at the threshold, on at most 0.1 % of the pixels).

Random parameters: over 200 cartoons the device and host sketches (different draws from the
same ranges) give the same mean line density, darkness and share of binary outputs within 4
standard errors of the difference (measured: within 1.6 over every method and mix, with and
without augment).
"""

import functools

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor.core.errors import ConfigError
from jaxcolor.data import device_sketch as D
from jaxcolor.data import sketch as S
from jaxcolor.data.sources import SyntheticCartoonSource

SIZES = [(256, 256), (96, 128)]


def _cartoons(n, hw, seed=3):
    source = SyntheticCartoonSource(n, hw, seed=seed)
    return np.stack([source[i] for i in range(n)])


@pytest.fixture(scope="module")
def cartoons():
    return {hw: _cartoons(3, hw) for hw in SIZES}


class _Draws:
    """A host rng that returns given values, in order, for `random()` and `uniform(lo, hi)`:
    runs the host extractor itself with chosen parameters."""

    def __init__(self, *values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)

    def uniform(self, low, high):
        value = self.values.pop(0)
        assert low <= value <= high
        return value


def _assert_close(device, host, *, max_level=1, share=1e-3):
    device, host = np.asarray(device).astype(int), np.asarray(host).astype(int)
    assert device.shape == host.shape
    diff = np.abs(device - host)
    assert (diff > 0).mean() <= share, (diff > 0).mean()
    if max_level is not None:
        assert diff.max() <= max_level, diff.max()


# ---------------------------------------------------------------------------------------------
# fixed parameters: device == host


@pytest.mark.parametrize("hw", SIZES)
def test_gray_is_cv2s_to_the_bit(hw, cartoons):
    rgb = np.concatenate([cartoons[hw], np.random.default_rng(0).integers(0, 256, (1, *hw, 3))])
    rgb = rgb.astype(np.uint8)
    device = np.asarray(jax.jit(jax.vmap(D.gray))(rgb))
    for d, image in zip(device, rgb, strict=True):
        np.testing.assert_array_equal(d, S._gray(image, "test"))


def test_the_gaussian_kernel_is_cv2s_zero_padded():
    for sigma in (0.18, 0.3, 0.5, 1.35, 2.25, 4.0):
        ksize = int(round(sigma * 8 + 1)) | 1
        ref = cv2.getGaussianKernel(ksize, sigma, cv2.CV_32F)[:, 0]
        taps = 41
        k = np.asarray(jax.jit(D.gaussian_kernel, static_argnums=1)(jnp.float32(sigma), taps))
        pad = (taps - ksize) // 2
        assert (k[:pad] == 0).all() and (k[taps - pad :] == 0).all()
        np.testing.assert_allclose(k[pad : taps - pad], ref, rtol=1e-6, atol=1e-8)


XDOG_PARAMS = [  # sigma, p, epsilon, phi: the defaults, range corners, soft phi
    (0.5, 19.0, 0.01, S.XDOG_HARD_PHI),
    (0.3, 49.0, -0.1, S.XDOG_HARD_PHI),
    (0.42, 33.0, -0.04, S.XDOG_HARD_PHI),
    (0.4, 30.0, -0.05, 50.0),
    (0.35, 25.0, 0.0, 10.0),
    (0.45, 40.0, -0.02, 200.0),
]


@pytest.mark.parametrize("hw", SIZES)
def test_xdog_with_fixed_parameters_is_the_hosts(hw, cartoons):
    images = cartoons[hw]
    params = np.array(XDOG_PARAMS, np.float32)
    rgb = np.repeat(images, len(params), axis=0)
    p = np.tile(params, (len(images), 1))
    fn = jax.jit(jax.vmap(lambda im, q: D.xdog_with(im, q[0], q[1], q[2], q[3])))
    device = np.asarray(fn(rgb, p))
    for d, image, (sigma, pp, eps, phi) in zip(device, rgb, p, strict=True):
        host = S.xdog(image, sigma=float(sigma), p=float(pp), epsilon=float(eps), phi=float(phi))
        hard = phi == np.float32(S.XDOG_HARD_PHI)
        _assert_close(d, host, max_level=None if hard else 1)
    # The defaults: xdog_fixed (key ignored) is the host's xdog() exactly as tests pin it.
    np.testing.assert_array_equal(
        np.asarray(jax.jit(D.xdog_fixed)(images[0], jax.random.key(0))), S.xdog(images[0])
    )


@pytest.mark.parametrize("hw", SIZES)
def test_sobel_and_highpass_with_fixed_parameters_are_the_hosts(hw, cartoons):
    images = cartoons[hw]
    sobel_params = [(3, 1.0), (3, 2.2), (5, 1.0), (5, 2.5)]
    ksize = np.array([k for k, _ in sobel_params] * len(images), np.int32)
    gain = np.array([g for _, g in sobel_params] * len(images), np.float32)
    rgb = np.repeat(images, len(sobel_params), axis=0)
    device = np.asarray(jax.jit(jax.vmap(D.sobel_with))(rgb, ksize, gain))
    for d, image, k, g in zip(device, rgb, ksize, gain, strict=True):
        host = S.sobel(image, _Draws(0.0 if k == 3 else 0.9, float(g)))
        _assert_close(d, host)
    if hw == (96, 128):  # a Python int kernel size
        sobel5 = jax.jit(D.sobel_with, static_argnums=1)(images[0], 5, 2.0)
        _assert_close(sobel5, S.sobel(images[0], _Draws(0.9, 2.0)))

    # (3, 3) are the host's fixed defaults (rng=None).
    hp_params = np.array([(2.0, 2.0), (3.0, 3.0), (4.0, 4.0), (2.7, 3.3)], np.float32)
    rgb = np.repeat(images, len(hp_params), axis=0)
    hp = np.tile(hp_params, (len(images), 1))
    device = np.asarray(jax.jit(jax.vmap(D.highpass_with))(rgb, hp[:, 0], hp[:, 1]))
    for d, image, (sigma, g) in zip(device, rgb, hp, strict=True):
        _assert_close(d, S.highpass(image, _Draws(float(sigma), float(g))))
        if sigma == 3.0 and g == 3.0:
            _assert_close(d, S.highpass(image))


def test_flat_images_stay_blank_paper_on_device():
    flat = np.stack([np.full((48, 64, 3), v, np.uint8) for v in (40, 128, 200, 255)] * 4)
    keys = jax.random.split(jax.random.key(0), len(flat))  # several draws per image

    @jax.jit
    @jax.vmap
    def all_forms(rgb, key):
        return jnp.stack([D.xdog(rgb, key), D.sobel(rgb, key), D.highpass(rgb, key)])

    assert (np.asarray(all_forms(flat, keys)) == 255).all()


@pytest.fixture(scope="module")
def host_sketches():
    """Unaugmented host sketches of every method at both sizes and at 400 px (3x3 morphology)."""
    rng = np.random.default_rng(0)
    out = []
    for hw in [*SIZES, (400, 416)]:
        for image in _cartoons(4, hw, seed=5):
            out.append(
                S.make_sketch("xdog:0.5,sobel:0.25,highpass:0.25", image, rng, augmented=False)
            )
    return out


def test_otsu_erode_dilate_and_intensity_are_cv2s(host_sketches):
    @jax.jit
    @jax.vmap
    def device(s, factor):
        return D.otsu_threshold(s), D.binarize(s), D.erode(s), D.dilate(s), D.lighten(s, factor)

    noise = np.random.default_rng(1).integers(0, 256, (2, 40, 56), dtype=np.uint8)
    flat = np.stack([np.full((40, 56), v, np.uint8) for v in (0, 128, 255)])
    rng = np.random.default_rng(1)
    by_shape = {}
    for s in [*(x[..., 0] for x in host_sketches), *noise, *flat]:
        by_shape.setdefault(s.shape, []).append(s)
    for group in by_shape.values():
        group = np.stack(group)
        factors = rng.uniform(*S.INTENSITY_RANGE, len(group)).astype(np.float32)
        out = [np.asarray(x) for x in device(group, factors)]
        size = 2 if min(group.shape[1:]) < 384 else 3
        kernel = np.ones((size, size), np.uint8)
        for i, s in enumerate(group):
            t, binary = cv2.threshold(s, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            assert out[0][i] == int(t)
            np.testing.assert_array_equal(out[1][i], binary)
            np.testing.assert_array_equal(out[2][i], cv2.erode(s, kernel))
            np.testing.assert_array_equal(out[3][i], cv2.dilate(s, kernel))
            darkness = (255.0 - s.astype(np.float32)) * float(factors[i])
            _assert_close(out[4][i], np.round(255.0 - darkness).astype(np.uint8))


# ---------------------------------------------------------------------------------------------
# random parameters: the same distributions

N = 200
HW = (96, 128)


@pytest.fixture(scope="module")
def many():
    return _cartoons(N, HW, seed=11)


def _stats(sketches):
    x = np.asarray(sketches)[..., 0].astype(np.float32)
    return {
        "line density": (x < 128).mean(axis=(1, 2)),
        "darkness": (255.0 - x).mean(axis=(1, 2)) / 255.0,
        "binary": ((x == 0) | (x == 255)).all(axis=(1, 2)).astype(np.float32),
    }


def _assert_same_distribution(device, host, what):
    for (name, d), h in zip(_stats(device).items(), _stats(host).values(), strict=True):
        se = np.sqrt(d.var() / len(d) + h.var() / len(h))
        gap = abs(d.mean() - h.mean())
        assert gap <= 4 * se + 1e-6, (what, name, d.mean(), h.mean(), se)


@functools.cache
def _batched(spec, augmented):
    return jax.jit(jax.vmap(lambda im, k: D.make_sketch(spec, im, k, augmented=augmented)))


def _device_batch(spec, images, *, augmented, seed=1):
    keys = jax.random.split(jax.random.key(seed), len(images))
    return np.asarray(_batched(spec, augmented)(images, keys))


def _host_batch(spec, images, *, augmented):
    return np.stack(
        [
            S.make_sketch(spec, im, np.random.default_rng([7, i]), augmented=augmented)
            for i, im in enumerate(images)
        ]
    )


@pytest.mark.parametrize("spec", ["xdog", "sobel", "highpass"])
def test_each_methods_parameters_are_drawn_as_on_the_host(spec, many):
    _assert_same_distribution(
        _device_batch(spec, many, augmented=False), _host_batch(spec, many, augmented=False), spec
    )


def test_augment_draws_its_options_as_the_host(many):
    # Sobel sketches are never binary: a binary output is Otsu's without the intensity step
    # (P_BINARIZE * (1 - P_INTENSITY) = 0.14 expected).
    rng = np.random.default_rng(3)
    sketches = np.stack([S.sobel(im, rng) for im in many])
    keys = jax.random.split(jax.random.key(5), N)
    device = np.asarray(jax.jit(jax.vmap(D.augment))(sketches, keys))
    host = np.stack([S.augment(s, np.random.default_rng([9, i])) for i, s in enumerate(sketches)])
    _assert_same_distribution(device, host, "augment")
    expected = S.P_BINARIZE * (1 - S.P_INTENSITY)
    assert abs(_stats(device)["binary"].mean() - expected) < 0.07
    # Per example, the outcome is one of the host's options applied to the same input.
    changed = (device != sketches).any(axis=(1, 2, 3)).mean()
    assert 0.4 < changed < 0.75  # 1 - 0.8 * 0.75 * 0.7 = 0.58 change something


def test_a_mix_picks_its_methods_by_weight_and_matches_the_host(many):
    spec = "xdog:0.7,sobel:0.2,highpass:0.1"
    _assert_same_distribution(
        _device_batch(spec, many, augmented=True), _host_batch(spec, many, augmented=True), spec
    )
    forms, probs = D.sketch_mix(spec)
    assert probs == pytest.approx((0.7, 0.2, 0.1))
    images = np.zeros((4000, 8, 8, 3), np.uint8)
    keys = jax.random.split(jax.random.key(2), len(images))
    draw = jax.jit(jax.vmap(lambda im, k: D.draw(forms, probs, im, k, augmented=False)[1]))
    freq = np.bincount(np.asarray(draw(images, keys)), minlength=3) / len(images)
    np.testing.assert_allclose(freq, [0.7, 0.2, 0.1], atol=0.03)


# ---------------------------------------------------------------------------------------------
# keys, jit and vmap


def test_same_key_same_sketch_and_vmap_equals_one_by_one(many):
    spec = "xdog:0.7,sobel:0.2,highpass:0.1"
    keys = jax.random.split(jax.random.key(4), N)
    batched = _batched(spec, True)  # the mix test's, compiled once
    a, b = np.asarray(batched(many, keys)), np.asarray(batched(many, keys))
    np.testing.assert_array_equal(a, b)
    # Other keys, other sketches.
    c = np.asarray(batched(many, jax.random.split(jax.random.key(5), N)))
    assert (a != c).any(axis=(1, 2, 3)).mean() > 0.9
    # Each example depends on its own image and key only: a permuted batch permutes the
    # sketches, and one example at a time (lax.switch takes one branch) gives the same.
    order = np.random.default_rng(0).permutation(N)
    np.testing.assert_array_equal(np.asarray(batched(many[order], keys[order])), a[order])
    one = jax.jit(lambda im, k: D.make_sketch(spec, im, k, augmented=True))
    for i in range(4):
        np.testing.assert_array_equal(np.asarray(one(many[i], keys[i])), a[i])
    # Per-example keys made by fold_in (as the caller's) work as well.
    folded = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(4), i))(jnp.arange(N))
    assert np.asarray(batched(many, folded)).shape == (N, *HW, 1)


# ---------------------------------------------------------------------------------------------
# registered methods


def _frame(image, rng=None):
    del rng
    out = np.full((*image.shape[:2], 1), 255, np.uint8)
    out[0], out[-1], out[:, 0], out[:, -1] = 0, 0, 0, 0
    return out


def _frame_device(rgb, key):
    del key
    h, w = rgb.shape[:2]
    edge = np.zeros((h, w, 1), bool)
    edge[0], edge[-1], edge[:, 0], edge[:, -1] = True, True, True, True
    return jnp.where(edge, jnp.uint8(0), jnp.uint8(255))


@pytest.fixture
def toy_methods():
    S.register("toy_frame", _frame, device=_frame_device)
    S.register("toy_host_only", _frame)
    yield
    S.unregister("toy_frame")
    S.unregister("toy_host_only")


def test_a_registered_device_form_is_used_and_a_host_only_method_is_refused(toy_methods, many):
    images = many[:64, :32, :48]
    assert S.device_form("toy_frame") is _frame_device
    assert S.device_form("xdog") is D.xdog and S.device_form("toy_host_only") is None
    out = _device_batch("toy_frame:0.5,xdog:0.5", images, augmented=False)
    frame = _frame(images[0])
    is_frame = (out == frame).all(axis=(1, 2, 3))
    assert 16 < is_frame.sum() < 48
    for spec in ("toy_host_only", "xdog:0.5,toy_host_only:0.5"):
        with pytest.raises(ConfigError, match=r"data\.sketch.*toy_host_only.*data\.derive='host'"):
            D.make_sketch(spec, images[0], jax.random.key(0), augmented=True)
    S.unregister("toy_frame")
    assert S.device_form("toy_frame") is None
