"""Resize and crop an image to the training size: the pipeline's crop, and the one PyTorch
inference uses for references (so only numpy and OpenCV are imported here, no JAX or Grain)."""

from __future__ import annotations

import cv2
import numpy as np

from jaxcolor.core.image_size import hw

# pix2pix resizes to 286 and random-crops 256: the same 1.117 ratio at any size.
CROP_MARGIN = 286 / 256


def crop_resize(image: np.ndarray, size, rng: np.random.Generator | None) -> np.ndarray:
    """Resize to cover the crop (with pix2pix's crop margin when training), crop size (h, w).

    `size` is an int (square) or (height, width). The scale makes the image cover
    round(side * CROP_MARGIN) on both axes when training (random crop), exactly the crop's
    sides in evaluation (centre crop); for a square crop that is "resize the short side".
    """
    th, tw = hw(size)
    h, w = image.shape[:2]
    if rng is not None:
        scale = max(round(th * CROP_MARGIN) / h, round(tw * CROP_MARGIN) / w)
    else:
        scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    # INTER_AREA at a fractional ratio costs ~6x INTER_LINEAR (3.3 vs 0.5 ms at 512 -> 286 px);
    # down to half size bilinear barely aliases, and JPEGs arrive pre-reduced to that range.
    if (nh, nw) != (h, w):  # a dataset stored at the crop's size needs only the crop
        if scale < 0.5:
            interp = cv2.INTER_AREA
        else:
            interp = cv2.INTER_LINEAR if scale < 1 else cv2.INTER_CUBIC
        image = cv2.resize(image, (nw, nh), interpolation=interp)
    if image.ndim == 2:  # cv2 drops a single channel (and a 2-D image gets one)
        image = image[..., None]
    if rng is None:  # evaluation: centre crop
        y, x = (nh - th) // 2, (nw - tw) // 2
    else:
        y, x = int(rng.integers(0, nh - th + 1)), int(rng.integers(0, nw - tw + 1))
    return image[y : y + th, x : x + tw]
