"""Line-art extraction from colour images (XDoG), used to build (sketch, colour) pairs."""

from __future__ import annotations

import cv2
import numpy as np

# Sigma is tuned at this resolution and scales with min(H, W) so lines keep the same width
# relative to the picture at any training size.
REFERENCE_SIZE = 256
# Floor on that scale (sigma 0.5 -> 0.3 px): below it the fine Gaussian stops suppressing pixel
# and JPEG noise, which then shows up as speckles in the sketch.
MIN_SIGMA_SCALE = 0.6


def xdog(
    image: np.ndarray,
    *,
    sigma: float = 0.5,
    k: float = 4.5,
    p: float = 19.0,
    epsilon: float = 0.01,
    phi: float = 1e9,
) -> np.ndarray:
    """Returns XDoG line art of a uint8 RGB image as uint8 (H, W, 1): dark lines on white."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"xdog expects an (H, W, 3) RGB image, got shape {image.shape}")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    s = sigma * max(MIN_SIGMA_SCALE, min(gray.shape) / REFERENCE_SIZE)
    fine = cv2.GaussianBlur(gray, (0, 0), s)
    coarse = cv2.GaussianBlur(gray, (0, 0), s * k)
    # Winnemöller et al. 2012, "p" form: sharpened image S = (1 + p) G_s - p G_ks, then a soft
    # threshold; a huge phi makes it a hard, near-binary threshold (clean ink lines).
    sharpened = (1.0 + p) * fine - p * coarse
    with np.errstate(over="ignore"):
        soft = 1.0 + np.tanh(np.minimum(phi * (sharpened - epsilon), 0.0))
    lines = np.where(sharpened >= epsilon, 1.0, soft)
    return np.round(np.clip(lines, 0.0, 1.0) * 255.0).astype(np.uint8)[..., None]


# Sketch extractors by `data.sketch` name.
SKETCHES = {"xdog": xdog}


def make_sketch(method: str, image: np.ndarray) -> np.ndarray:
    """Returns the sketch of `image` by `method` (see SKETCHES) as uint8 (H, W, 1)."""
    if method not in SKETCHES:
        raise ValueError(
            f"Unknown data.sketch {method!r}; valid methods are {', '.join(sorted(SKETCHES))}."
        )
    return SKETCHES[method](image)
