"""Line-art extraction from colour images, used to build (sketch, colour) pairs.

Every extractor is a pure function `(rgb uint8 (H, W, 3), rng) -> uint8 (H, W, 1)`: dark lines on
white paper (255). With `rng=None` an extractor uses its fixed default parameters (what
`python -m jaxcolor.colorize` users see in the README and what the tests pin); with a
`np.random.Generator` it draws its parameters per sample, so one dataset shows the generator
many line styles. The pipeline always passes the example's rng, so `data.sketch = "xdog"`
(the default) randomises XDoG's parameters and applies the augmentations below; the result is
deterministic given the seed. Only numpy and OpenCV are imported: this module is also used by
PyTorch inference, which imports no JAX.

`data.sketch` is one name of SKETCHES or a weighted mix such as
"xdog:0.7,sobel:0.2,highpass:0.1" (weights are relative; one method is drawn per example).
"""

from __future__ import annotations

import functools
import importlib

import cv2
import numpy as np

from jaxcolor.core.errors import ConfigError

# Sigma is tuned at this resolution and scales with min(H, W) so lines keep the same width
# relative to the picture at any training size.
REFERENCE_SIZE = 256
# Floor on that scale (sigma 0.5 -> 0.3 px): below it the fine Gaussian stops suppressing pixel
# and JPEG noise, which then shows up as speckles in the sketch.
MIN_SIGMA_SCALE = 0.6

# XDoG parameter ranges drawn per sample (the "p" form of Winnemöller et al. 2012, "XDoG: An
# eXtended difference-of-Gaussians compendium"):
# - sigma in {0.3, 0.4, 0.5} (uniform here) and k = 4.5: Ci et al. 2018, "User-Guided Deep
#   Anime Line Art Colorization with Conditional Adversarial Networks", which vary sigma for
#   line thickness and keep kappa = 4.5.
# - p in [19, 49]: Ci et al. use tau = 0.95, and tau 0.95-0.98 is the range line-art
#   colorization work reports; the p form is S = (1 + p) G_s - p G_ks, i.e. tau = p / (1 + p),
#   so tau 0.95 -> p 19 (the classic "p = 19" default) and tau 0.98 -> p 49 (more detail).
# - epsilon in [-0.1, 0.01]: Ci et al. use -0.1 (tau form), the p-form default is 0.01;
#   lower values drop dark flat regions from the line art.
# - phi: 1e9 (a hard, near-binary step, as Ci et al.) half of the time, otherwise a soft
#   threshold with phi in [10, 200] (Winnemöller et al.'s soft/pencil range) for grey lines.
XDOG_SIGMA = (0.3, 0.5)
XDOG_K = 4.5
XDOG_P = (19.0, 49.0)
XDOG_EPSILON = (-0.1, 0.01)
XDOG_HARD_PHI = 1e9
XDOG_SOFT_PHI = (10.0, 200.0)
XDOG_P_HARD = 0.5

# Augmentations applied after extraction when an rng is given, each with its own probability.
P_BINARIZE = 0.2  # Otsu threshold: clean black-and-white ink
P_THICKEN = 0.15  # erode the white paper: lines one pixel bolder
P_THIN = 0.1  # dilate the paper: thinner (and broken) lines, as in light pencil
P_INTENSITY = 0.3  # lighter lines: darkness scaled by INTENSITY_RANGE
INTENSITY_RANGE = (0.5, 0.95)


def _gray(image: np.ndarray, name: str) -> np.ndarray:
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"{name} expects an (H, W, 3) RGB image, got shape {image.shape}")
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _scale(shape) -> float:
    return min(shape[:2]) / REFERENCE_SIZE


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)[..., None]


def xdog(
    image: np.ndarray,
    rng: np.random.Generator | None = None,
    *,
    sigma: float = 0.5,
    k: float = XDOG_K,
    p: float = 19.0,
    epsilon: float = 0.01,
    phi: float = XDOG_HARD_PHI,
) -> np.ndarray:
    """XDoG line art, uint8 (H, W, 1); with `rng` the parameters come from the XDOG_* ranges."""
    gray = _gray(image, "xdog")
    if rng is not None:
        sigma = float(rng.uniform(*XDOG_SIGMA))
        p = float(rng.uniform(*XDOG_P))
        epsilon = float(rng.uniform(*XDOG_EPSILON))
        phi = XDOG_HARD_PHI if rng.random() < XDOG_P_HARD else float(rng.uniform(*XDOG_SOFT_PHI))
    s = sigma * max(MIN_SIGMA_SCALE, _scale(gray.shape))
    fine = cv2.GaussianBlur(gray, (0, 0), s)
    coarse = cv2.GaussianBlur(gray, (0, 0), s * k)
    # Sharpened image S = (1 + p) G_s - p G_ks, then a soft threshold; a huge phi makes it a
    # hard, near-binary threshold (clean ink lines). A flat image has S = gray >= epsilon for
    # any non-black gray, so it stays blank paper.
    sharpened = (1.0 + p) * fine - p * coarse
    with np.errstate(over="ignore"):
        soft = 1.0 + np.tanh(np.minimum(phi * (sharpened - epsilon), 0.0))
    return _to_u8(np.where(sharpened >= epsilon, 1.0, soft))


# Sobel: the UAN anime-style image coloriser (vrobbin3247/UAN-based-anime-style-image-
# coloriser on GitHub) takes |grad| of the gray image with a 3x3
# kernel, normalises by the maximum and inverts. Randomised: kernel 3 or 5 and a gain in
# SOBEL_GAIN (magnitudes above max/gain saturate to black, so weak edges vary in darkness).
SOBEL_GAIN = (1.0, 2.5)
# Below this fraction of the full range (max |grad| of a 0 -> 1 step) an image counts as
# flat: normalising its noise by its own maximum would draw speckles.
SOBEL_MIN_RESPONSE = 0.05


def sobel(image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Inverted Sobel gradient magnitude (the UAN coloriser's edge sketch), uint8 (H, W, 1)."""
    gray = _gray(image, "sobel")
    ksize, gain = 3, 1.0
    if rng is not None:
        ksize = 3 if rng.random() < 0.5 else 5
        gain = float(rng.uniform(*SOBEL_GAIN))
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=ksize)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=ksize)
    magnitude = cv2.magnitude(gx, gy)
    # A unit step's response for this kernel: 4 for 3x3, 16 for 5x5 (sum of the smoothing row).
    full = 4.0 if ksize == 3 else 16.0
    peak = float(magnitude.max())
    if peak < SOBEL_MIN_RESPONSE * full:
        return np.full((*gray.shape, 1), 255, np.uint8)
    return _to_u8(1.0 - np.minimum(magnitude * (gain / peak), 1.0))


# High-pass ("gray minus blur"): only the side darker than its surroundings is kept, so lines
# come out dark and flat areas white. sigma (at 256 px, scaled like XDoG) and gain ranges are
# ours, chosen so a 1-2 px line at 256 px comes out near-black and shading stays faint.
HIGHPASS_SIGMA = (2.0, 4.0)
HIGHPASS_GAIN = (2.0, 4.0)


def highpass(image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """255 minus gain * (blur - gray) where positive: a soft pencil-like sketch, (H, W, 1)."""
    gray = _gray(image, "highpass")
    sigma, gain = 3.0, 3.0
    if rng is not None:
        sigma = float(rng.uniform(*HIGHPASS_SIGMA))
        gain = float(rng.uniform(*HIGHPASS_GAIN))
    blurred = cv2.GaussianBlur(gray, (0, 0), sigma * max(MIN_SIGMA_SCALE, _scale(gray.shape)))
    return _to_u8(1.0 - gain * np.maximum(blurred - gray, 0.0))


def augment(sketch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random Otsu binarisation, line thickness and line intensity; uint8 (H, W, 1) in and out."""
    s = sketch[..., 0]
    if rng.random() < P_BINARIZE:
        _, s = cv2.threshold(s, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # 2x2 at 256 px; 3x3 from 384 px up, so the change stays about one 256-px pixel.
    size = 2 if min(s.shape) < 384 else 3
    kernel = np.ones((size, size), np.uint8)
    u = rng.random()
    if u < P_THICKEN:
        s = cv2.erode(s, kernel)  # the white paper shrinks: dark lines grow
    elif u < P_THICKEN + P_THIN:
        s = cv2.dilate(s, kernel)
    if rng.random() < P_INTENSITY:
        darkness = (255.0 - s.astype(np.float32)) * float(rng.uniform(*INTENSITY_RANGE))
        s = np.round(255.0 - darkness).astype(np.uint8)
    return np.ascontiguousarray(s)[..., None]


def xdog_fixed(image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """XDoG with its fixed default parameters even when given an rng: one consistent line style,
    as the "Animation-to-Sketch with U-Net" project generated its targets ("the same parameters
    in XDoG")."""
    del rng
    return xdog(image)


# Sketch extractors by `data.sketch` name: the only table of them (`register` adds one).
SKETCHES = {"xdog": xdog, "xdog_fixed": xdog_fixed, "sobel": sobel, "highpass": highpass}

# Their device (JAX) forms `(rgb uint8 (H, W, 3), key) -> uint8 (H, W, 1)`, which derive the
# sketch inside the jitted step (data.derive='device'): "module:function" strings for the
# built-ins, so that this module imports no JAX, or callables given to `register`. A method
# without one can only be derived on the host.
DEVICE_FORMS: dict[str, object] = {
    name: f"jaxcolor.data.device_sketch:{name}"
    for name in ("xdog", "xdog_fixed", "sobel", "highpass")
}


def register(name: str, extractor, *, device=None) -> None:
    """Adds a sketch extractor `(rgb uint8 (H, W, 3), rng or None) -> uint8 (H, W, 1)` (numpy,
    deterministic given its rng, a module-level function for Grain's workers) as a `data.sketch`
    name, usable alone or in a weighted mix. `device`: its JAX form `(rgb uint8 (H, W, 3), key)
    -> uint8 (H, W, 1)` (a callable or a "module:function" string) drawing its parameters from
    the key as the extractor draws them from the rng; without one the method is host-only."""
    if ":" in name or "," in name or name == DATASET_SKETCH:
        raise ValueError(f"sketch method name {name!r}: no ':' or ',', not {DATASET_SKETCH!r}")
    if SKETCHES.get(name, extractor) is not extractor:
        raise ValueError(f"sketch method {name!r} is already registered")
    if device is not None and DEVICE_FORMS.get(name, device) is not device:
        raise ValueError(f"sketch method {name!r} already has another device form")
    if device is not None and not (callable(device) or isinstance(device, str)):
        raise TypeError(f"the device form of {name!r} must be callable or 'module:function'")
    SKETCHES[name] = extractor
    if device is not None:
        DEVICE_FORMS[name] = device
    parse_sketch_mix.cache_clear()


def unregister(name: str) -> None:
    SKETCHES.pop(name, None)
    DEVICE_FORMS.pop(name, None)
    parse_sketch_mix.cache_clear()


def device_form(name: str):
    """The device form of sketch method `name` (a callable; importing its module, which imports
    JAX, on first use), or None when it has none."""
    form = DEVICE_FORMS.get(name)
    if isinstance(form, str):
        module, _, attr = form.partition(":")
        form = getattr(importlib.import_module(module), attr)
    return form


# data.sketch value that uses the dataset's own sketches (paired data) instead of deriving one.
DATASET_SKETCH = "dataset"
# data.sketch prefix "model:DIR": an exported sketch extractor (task="sketch") makes the sketch
# from the colour batch on device (jaxcolor.training.sketcher); the host derives none.
MODEL_SKETCH = "model:"


def is_model_sketch(spec: str) -> bool:
    """Whether `data.sketch` names an exported sketch model ("model:DIR")."""
    return str(spec).startswith(MODEL_SKETCH)


@functools.lru_cache(maxsize=64)
def parse_sketch_mix(spec: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """`data.sketch` -> (names, probabilities): "xdog", or "xdog:0.7,sobel:0.3" (relative)."""
    hint = (
        f"use one of {', '.join(sorted(SKETCHES))} or a weighted mix such as "
        "'xdog:0.7,sobel:0.2,highpass:0.1'."
    )
    names, weights = [], []
    for part in str(spec).split(","):
        name, sep, weight = part.strip().partition(":")
        name = name.strip()
        if name not in SKETCHES:
            raise ConfigError(f"data.sketch={spec!r}: unknown sketch method {name!r}; {hint}")
        if name in names:
            raise ConfigError(f"data.sketch={spec!r}: {name!r} is listed twice; {hint}")
        try:
            w = float(weight) if sep else 1.0
        except ValueError:
            w = float("nan")
        if not np.isfinite(w) or w < 0:
            raise ConfigError(
                f"data.sketch={spec!r}: the weight of {name!r} must be a number >= 0, got "
                f"{weight!r}; {hint}"
            )
        names.append(name)
        weights.append(w)
    total = sum(weights)
    if total <= 0:
        raise ConfigError(f"data.sketch={spec!r}: the weights sum to 0; {hint}")
    return tuple(names), tuple(w / total for w in weights)


def make_sketch(
    method: str, image: np.ndarray, rng: np.random.Generator | None = None, *, augmented=True
) -> np.ndarray:
    """The sketch of `image` by `method` (a SKETCHES name or a mix) as uint8 (H, W, 1).

    Without `rng`: the first method of the mix with its fixed defaults, no augmentation. With
    `rng`: a method drawn by weight, its parameters drawn, then `augment` (if `augmented`).
    """
    return mix_sketch(*sketch_mix(method), image, rng, augmented=augmented)


def sketch_mix(method: str) -> tuple[tuple, tuple[float, ...]]:
    """`data.sketch` -> (its extractors, their probabilities): what `mix_sketch` draws from,
    resolved here so that Grain's workers draw with extractors registered in this process."""
    names, probs = parse_sketch_mix(method)
    return tuple(SKETCHES[name] for name in names), probs


def mix_sketch(
    extractors: tuple,
    probs: tuple[float, ...],
    image: np.ndarray,
    rng: np.random.Generator | None = None,
    *,
    augmented=True,
) -> np.ndarray:
    """`make_sketch` with the mix resolved (`sketch_mix`)."""
    if rng is None:
        return extractors[0](image)
    i = 0 if len(extractors) == 1 else int(rng.choice(len(extractors), p=probs))
    sketch = extractors[i](image, rng)
    return augment(sketch, rng) if augmented else sketch
