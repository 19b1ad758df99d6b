"""Colour hints that condition the generator, one function per method."""

from __future__ import annotations

import cv2
import numpy as np

# Number of hint channels each method produces; the generator's input width depends on it.
HINT_CHANNELS = {"blur": 3, "none": 0}

REFERENCE_SIZE = 256


def blur_hints(image: np.ndarray, *, sigma_at_256: float = 20.0) -> np.ndarray:
    """Returns a heavily Gaussian-blurred copy of a uint8 RGB image as coarse colour cues."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"blur_hints expects an (H, W, 3) RGB image, got shape {image.shape}")
    # Scaling with size keeps the cue equally coarse relative to the picture at any resolution.
    sigma = sigma_at_256 * min(image.shape[:2]) / REFERENCE_SIZE
    return cv2.GaussianBlur(image, (0, 0), sigma)


def make_hints(method: str, image: np.ndarray) -> np.ndarray:
    """Returns the hint channels for `method` (see HINT_CHANNELS) as uint8 (H, W, C)."""
    if method == "blur":
        return blur_hints(image)
    if method == "none":
        return np.zeros((*image.shape[:2], 0), np.uint8)
    raise ValueError(
        f"Unknown data.hints {method!r}; valid methods are {', '.join(sorted(HINT_CHANNELS))}."
    )
