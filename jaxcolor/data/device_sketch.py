"""Device (JAX) forms of the sketch extractors and `augment` of jaxcolor.data.sketch.

Each form is written for ONE example and is vmapped by its caller inside jit:

    extractor: fn(rgb uint8 (H, W, 3), key) -> uint8 (H, W, 1)
    augment(sketch uint8 (H, W, 1), key) -> uint8 (H, W, 1)
    make_sketch(method, rgb, key, *, augmented) -> uint8 (H, W, 1)

A form draws its parameters from `key` from the same ranges and with the same probabilities as
the host extractor draws them from an rng (the draws themselves differ: a key is not an rng), so
over many examples the two give the same distribution of sketches. With fixed parameters
(`xdog_with`, `sobel_with`, `highpass_with`) the device image is the host image up to float32
rounding: the maths follow OpenCV's (fixed-point RGB2GRAY, cv2's Gaussian kernel for float32
images, BORDER_REFLECT_101, cv2's Sobel kernels, Otsu's threshold as cv2.THRESH_OTSU, erosion
and dilation with cv2's anchor and border). tests/test_device_sketch.py states the measured
differences.

A Gaussian's sigma is drawn per example, so it is traced: its kernel is built at a fixed number
of taps (from the largest sigma the parameter ranges allow at this image size) and the taps
beyond the example's own radius are zeroed before normalising, which is cv2's kernel exactly.
Blurs are separable shifted sums (elementwise float32 multiply-adds; no convolution op whose
precision a backend may lower).

JAX and numpy only (no Flax, no Grain); jaxcolor.data.sketch names these forms by
"module:function" strings so that it imports no JAX itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcolor.core.errors import ConfigError
from jaxcolor.data import sketch as host

# ---------------------------------------------------------------------------------------------
# OpenCV's building blocks


def gray(rgb: jax.Array) -> jax.Array:
    """cv2.cvtColor(rgb, COLOR_RGB2GRAY) on uint8, / 255 as float32. OpenCV 4's fixed point for
    8-bit gray: 15-bit weights 9798, 19235, 3735 (0.299, 0.587, 0.114, summing to 2^15) with
    rounding; bit-exact with cv2 (the tests check it)."""
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"a sketch expects an (H, W, 3) RGB image, got shape {rgb.shape}")
    c = rgb.astype(jnp.int32)
    y = (c[..., 0] * 9798 + c[..., 1] * 19235 + c[..., 2] * 3735 + (1 << 14)) >> 15
    return _over_255(y.astype(jnp.float32))


def _over_255(y: jax.Array) -> jax.Array:
    """y / 255 rounded as numpy rounds it (y: whole numbers 0..255 as float32), from
    multiplications and subtractions only: XLA may turn a division by a constant into a
    multiplication by its reciprocal, which is off by one ulp for most levels, and a lookup table
    would be a gather (on TPU counted as reading the table per pixel: 270 MB per 256 px image).
    Of the product and its two neighbours it keeps the one whose c * 255 - y is smallest, which
    (c * 256 - y) - c computes exactly (Sterbenz: each subtraction's operands are within 2x)."""
    r = y * np.float32(1.0 / 255.0)
    best, err = r, jnp.abs((r * 256.0 - y) - r)
    for c in (jnp.nextafter(r, jnp.float32(-1.0)), jnp.nextafter(r, jnp.float32(2.0))):
        e = jnp.abs((c * 256.0 - y) - c)
        best, err = jnp.where(e < err, c, best), jnp.minimum(e, err)
    return best


def _ksize(sigma):
    """cv2's Gaussian size for float32 images: cvRound(sigma * 4 * 2 + 1) | 1 (traced)."""
    return jnp.round(sigma * 8.0 + 1.0).astype(jnp.int32) | 1


def _max_taps(max_sigma: float) -> int:
    """The static kernel length covering every sigma up to `max_sigma`."""
    return int(round(float(max_sigma) * 8.0 + 1.0)) | 1


def gaussian_kernel(sigma, taps: int) -> jax.Array:
    """cv2.getGaussianKernel(ksize(sigma), sigma) centred in `taps` (odd) zero-padded taps."""
    sigma = jnp.asarray(sigma, jnp.float32)
    x = jnp.arange(taps, dtype=jnp.float32) - jnp.float32((taps - 1) // 2)
    radius = (_ksize(sigma) - 1) // 2
    k = jnp.where(
        jnp.abs(x) <= radius.astype(jnp.float32), jnp.exp(-(x * x) / (2 * sigma * sigma)), 0.0
    )
    return k / jnp.sum(k)


def _correlate1d(x: jax.Array, taps: jax.Array, axis: int) -> jax.Array:
    """sum_i taps[i] * x[. + i - r] along `axis`, with BORDER_REFLECT_101 (numpy's "reflect")."""
    n = taps.shape[0]
    r = (n - 1) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    xp = jnp.pad(x, pad, mode="reflect")
    size = x.shape[axis]
    out = taps[0] * lax.slice_in_dim(xp, 0, size, axis=axis)
    for i in range(1, n):
        out = out + taps[i] * lax.slice_in_dim(xp, i, i + size, axis=axis)
    return out


def _sep_filter(image: jax.Array, kx: jax.Array, ky: jax.Array) -> jax.Array:
    """cv2.sepFilter2D: the row kernel `kx` along x, then the column kernel `ky` along y."""
    return _correlate1d(_correlate1d(image, kx, axis=1), ky, axis=0)


def gaussian_blur(image: jax.Array, sigma, max_sigma: float) -> jax.Array:
    """cv2.GaussianBlur(image float32 (H, W), (0, 0), sigma) for a traced sigma <= max_sigma."""
    k = gaussian_kernel(sigma, _max_taps(max_sigma))
    return _sep_filter(image, k, k)


def _to_u8(x: jax.Array) -> jax.Array:
    """sketch._to_u8: round half to even of clip(x, 0, 1) * 255, as uint8 (H, W, 1)."""
    return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)[..., None]


def _sigma_scale(shape: Sequence[int]) -> float:
    """The host's sigma scale max(MIN_SIGMA_SCALE, min(H, W) / REFERENCE_SIZE) (static)."""
    return max(host.MIN_SIGMA_SCALE, min(shape[:2]) / host.REFERENCE_SIZE)


def _static_max(value, default: float) -> float:
    """max(default, value) when `value` is a concrete number, else `default` (a traced value must
    stay within the ranges `default` comes from)."""
    if isinstance(value, jax.core.Tracer):
        return float(default)
    return max(float(default), float(np.max(np.asarray(value))))


def _uniforms(key, n: int) -> jax.Array:
    """n independent U[0, 1) float32 draws from one key (one PRNG call: each further call
    costs compile time in every step that derives sketches)."""
    return jax.random.uniform(key, (n,), jnp.float32)


def _within(u: jax.Array, bounds: tuple[float, float]) -> jax.Array:
    """A U[0, 1) draw mapped to U[bounds), as rng.uniform(*bounds)."""
    low, high = bounds
    return jnp.float32(low) + u * jnp.float32(high - low)


# ---------------------------------------------------------------------------------------------
# extractors


def xdog_with(rgb: jax.Array, sigma, p, epsilon, phi, *, k: float = host.XDOG_K) -> jax.Array:
    """sketch.xdog(rgb, sigma=, k=, p=, epsilon=, phi=) on device; the parameters may be traced
    (sigma then within XDOG_SIGMA) or numbers."""
    g = gray(rgb)
    scale = _sigma_scale(g.shape)
    max_sigma = _static_max(sigma, host.XDOG_SIGMA[1]) * scale
    s = jnp.asarray(sigma, jnp.float32) * jnp.float32(scale)
    fine = gaussian_blur(g, s, max_sigma)
    coarse = gaussian_blur(g, s * jnp.float32(k), max_sigma * k)
    p = jnp.asarray(p, jnp.float32)
    epsilon = jnp.asarray(epsilon, jnp.float32)
    sharpened = (1.0 + p) * fine - p * coarse
    soft = 1.0 + jnp.tanh(jnp.minimum(jnp.asarray(phi, jnp.float32) * (sharpened - epsilon), 0.0))
    return _to_u8(jnp.where(sharpened >= epsilon, 1.0, soft))


def xdog(rgb: jax.Array, key) -> jax.Array:
    """sketch.xdog(rgb, rng): sigma, p, epsilon uniform in their XDOG_* ranges; phi hard
    (XDOG_HARD_PHI) with probability XDOG_P_HARD, else uniform in XDOG_SOFT_PHI."""
    u = _uniforms(key, 5)
    sigma = _within(u[0], host.XDOG_SIGMA)
    p = _within(u[1], host.XDOG_P)
    epsilon = _within(u[2], host.XDOG_EPSILON)
    hard = u[3] < host.XDOG_P_HARD
    phi = jnp.where(hard, jnp.float32(host.XDOG_HARD_PHI), _within(u[4], host.XDOG_SOFT_PHI))
    return xdog_with(rgb, sigma, p, epsilon, phi)


def xdog_fixed(rgb: jax.Array, key=None) -> jax.Array:
    """sketch.xdog_fixed: XDoG with the host's fixed defaults whatever the key."""
    del key
    return xdog_with(rgb, 0.5, 19.0, 0.01, host.XDOG_HARD_PHI)


# cv2.getDerivKernels(1, 0, ksize) for ksize 3 and 5 as 5 taps: the derivative and smoothing rows
# (3x3 padded with zeros, so one 5-tap filter serves both sizes; zero taps add exactly 0).
_DERIV = {3: (0.0, -1.0, 0.0, 1.0, 0.0), 5: (-1.0, -2.0, 0.0, 2.0, 1.0)}
_SMOOTH = {3: (0.0, 1.0, 2.0, 1.0, 0.0), 5: (1.0, 4.0, 6.0, 4.0, 1.0)}


def sobel_with(rgb: jax.Array, ksize, gain) -> jax.Array:
    """sketch.sobel with a given kernel size (3 or 5: a number, or a traced bool/int) and gain."""
    g = gray(rgb)
    if isinstance(ksize, int | np.integer):
        if int(ksize) not in (3, 5):
            raise ValueError(f"sobel ksize must be 3 or 5, got {ksize}")
    five = jnp.asarray(ksize) == 5
    deriv = jnp.where(five, jnp.array(_DERIV[5]), jnp.array(_DERIV[3])).astype(jnp.float32)
    smooth = jnp.where(five, jnp.array(_SMOOTH[5]), jnp.array(_SMOOTH[3])).astype(jnp.float32)
    gx = _sep_filter(g, deriv, smooth)
    gy = _sep_filter(g, smooth, deriv)
    magnitude = jnp.sqrt(gx * gx + gy * gy)
    full = jnp.where(five, jnp.float32(16.0), jnp.float32(4.0))
    peak = jnp.max(magnitude)
    flat = peak < host.SOBEL_MIN_RESPONSE * full
    scale = jnp.asarray(gain, jnp.float32) / jnp.where(flat, 1.0, peak)
    sketch = _to_u8(1.0 - jnp.minimum(magnitude * scale, 1.0))
    return jnp.where(flat, jnp.uint8(255), sketch)


def sobel(rgb: jax.Array, key) -> jax.Array:
    """sketch.sobel(rgb, rng): kernel 3 or 5 with probability 1/2 each, gain in SOBEL_GAIN."""
    u = _uniforms(key, 2)
    return sobel_with(rgb, jnp.where(u[0] < 0.5, 3, 5), _within(u[1], host.SOBEL_GAIN))


def highpass_with(rgb: jax.Array, sigma, gain) -> jax.Array:
    """sketch.highpass with a given sigma (at 256 px; traced within HIGHPASS_SIGMA, or a
    number) and gain."""
    g = gray(rgb)
    scale = _sigma_scale(g.shape)
    max_sigma = _static_max(sigma, host.HIGHPASS_SIGMA[1]) * scale
    blurred = gaussian_blur(g, jnp.asarray(sigma, jnp.float32) * jnp.float32(scale), max_sigma)
    gain = jnp.asarray(gain, jnp.float32)
    return _to_u8(1.0 - gain * jnp.maximum(blurred - g, 0.0))


def highpass(rgb: jax.Array, key) -> jax.Array:
    """sketch.highpass(rgb, rng): sigma in HIGHPASS_SIGMA, gain in HIGHPASS_GAIN."""
    u = _uniforms(key, 2)
    return highpass_with(rgb, _within(u[0], host.HIGHPASS_SIGMA), _within(u[1], host.HIGHPASS_GAIN))


# ---------------------------------------------------------------------------------------------
# augmentations

_FLT_EPSILON = float(np.finfo(np.float32).eps)


def otsu_threshold(s: jax.Array) -> jax.Array:
    """cv2's Otsu threshold of uint8 `s` (any shape): the first level of the 256-bin histogram
    that maximises the between-class variance (0 when no split has any), int32. cv2 computes
    in float64, this in float32: a near-tie may pick another level (the tests count how often)."""
    counts = jnp.zeros(256, jnp.int32).at[s.reshape(-1).astype(jnp.int32)].add(1)
    levels = jnp.arange(256, dtype=jnp.float32)
    p = counts.astype(jnp.float32) / jnp.float32(s.size)
    mu = jnp.sum(levels * p)
    q1 = jnp.cumsum(p)
    m1 = jnp.cumsum(levels * p)
    q2 = 1.0 - q1
    valid = (jnp.minimum(q1, q2) >= _FLT_EPSILON) & (jnp.maximum(q1, q2) <= 1.0 - _FLT_EPSILON)
    mu1 = m1 / jnp.where(valid, q1, 1.0)
    mu2 = (mu - q1 * mu1) / jnp.where(valid, q2, 1.0)
    sigma = jnp.where(valid, q1 * q2 * (mu1 - mu2) ** 2, 0.0)
    best = jnp.argmax(sigma).astype(jnp.int32)  # the first maximum, as cv2's strict '>'
    return jnp.where(sigma[best] > 0.0, best, 0)


def binarize(s: jax.Array) -> jax.Array:
    """cv2.threshold(s, 0, 255, THRESH_BINARY + THRESH_OTSU)[1]: > threshold -> 255, else 0."""
    return jnp.where(s.astype(jnp.int32) > otsu_threshold(s), jnp.uint8(255), jnp.uint8(0))


def _morph(s: jax.Array, size: int, op: Callable, border: int) -> jax.Array:
    """cv2.erode/dilate of (H, W) uint8 by a size x size square: cv2 anchors it at size // 2, so
    the window spans rows y - size//2 .. y + (size-1)//2 (the same for columns); pixels outside
    the image do not count (padding with the op's neutral value)."""
    before, after = size // 2, (size - 1) // 2
    h, w = s.shape
    sp = jnp.pad(s, ((before, after), (before, after)), constant_values=border)
    out = None
    for dy in range(size):
        for dx in range(size):
            window = sp[dy : dy + h, dx : dx + w]
            out = window if out is None else op(out, window)
    return out


def erode(s: jax.Array) -> jax.Array:
    """cv2.erode with augment's kernel (2x2 below 384 px short side, 3x3 from 384): lines grow."""
    return _morph(s, 2 if min(s.shape) < 384 else 3, jnp.minimum, 255)


def dilate(s: jax.Array) -> jax.Array:
    """cv2.dilate with augment's kernel: lines thin."""
    return _morph(s, 2 if min(s.shape) < 384 else 3, jnp.maximum, 0)


def lighten(s: jax.Array, factor) -> jax.Array:
    """augment's intensity step: round(255 - (255 - s) * factor) as uint8."""
    darkness = (255.0 - s.astype(jnp.float32)) * jnp.asarray(factor, jnp.float32)
    return jnp.round(255.0 - darkness).astype(jnp.uint8)


def augment(sketch: jax.Array, key) -> jax.Array:
    """sketch.augment on device: Otsu binarisation with P_BINARIZE; then erode with P_THICKEN,
    else dilate with P_THIN; then with P_INTENSITY darkness scaled by U(INTENSITY_RANGE)."""
    u = _uniforms(key, 4)
    s = sketch[..., 0]
    s = jnp.where(u[0] < host.P_BINARIZE, binarize(s), s)
    s = jnp.where(
        u[1] < host.P_THICKEN,
        erode(s),
        jnp.where(u[1] < host.P_THICKEN + host.P_THIN, dilate(s), s),
    )
    s = jnp.where(u[2] < host.P_INTENSITY, lighten(s, _within(u[3], host.INTENSITY_RANGE)), s)
    return s[..., None]


# ---------------------------------------------------------------------------------------------
# data.sketch on device


def sketch_mix(method: str) -> tuple[tuple[Callable, ...], tuple[float, ...]]:
    """`data.sketch` -> (the device forms of its methods, their probabilities); ConfigError when
    one has no device form."""
    names, probs = host.parse_sketch_mix(method)
    forms = []
    for name in names:
        form = host.device_form(name)
        if form is None:
            raise ConfigError(
                f"data.sketch={method!r}: sketch method {name!r} has no device form (register "
                "it with sketch.register(name, extractor, device=fn)); set data.derive='host' "
                "to derive sketches on the host."
            )
        forms.append(form)
    return tuple(forms), probs


def draw(
    forms: Sequence[Callable],
    probs: Sequence[float],
    rgb: jax.Array,
    key,
    *,
    augmented: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """One sketch of `rgb` from the mix (`sketch_mix`): (uint8 (H, W, 1), the drawn method's
    index int32). The method is drawn by weight, then its parameters, then `augment`."""
    k_method, k_form, k_aug = jax.random.split(key, 3)
    forms = tuple(forms)
    if len(forms) == 1:
        index = jnp.int32(0)
        sketch = forms[0](rgb, k_form)
    else:
        # As rng.choice(n, p=probs): the number of cumulative weights <= a U[0, 1) draw.
        cdf = np.cumsum(np.asarray(probs, np.float64))
        cdf = jnp.asarray(cdf[:-1] / cdf[-1], jnp.float32)
        index = jnp.sum(jax.random.uniform(k_method, ()) >= cdf).astype(jnp.int32)
        sketch = lax.switch(index, forms, rgb, k_form)
    if sketch.shape != (*rgb.shape[:2], 1) or sketch.dtype != jnp.uint8:
        raise ValueError(
            f"a sketch device form returned {sketch.dtype}{tuple(sketch.shape)}, "
            f"expected uint8{(*rgb.shape[:2], 1)}"
        )
    return (augment(sketch, k_aug) if augmented else sketch), index


def make_sketch(method: str, rgb: jax.Array, key, *, augmented: bool) -> jax.Array:
    """sketch.make_sketch(method, rgb, rng, augmented=) on device: uint8 (H, W, 1)."""
    forms, probs = sketch_mix(method)
    return draw(forms, probs, rgb, key, augmented=augmented)[0]
