"""Hint fidelity (`hint_error`): how far an output strays from the colours the user gave, on device.

The mean absolute RGB error on the 0-255 scale between the output (as the 8-bit image a user
gets) and the hint colours, pooled over every hinted pixel of a set: the sum of |error| over
pixels and channels, divided by 3 x the number of hinted pixels. Images without hints add nothing.
Which pixels carry a colour is the `data.hints` method's spec (`jaxcolor.data.hints.HintSpec`:
`hinted_pixels`, or `palette` planes); for the built-in methods:

  points, strokes   the pixels whose mask channel is MASK_ON, against their R, G, B;
  scribbles         the pixels of the scribble image that are not paper (some channel at or
                    below PAPER_LEVEL, the rule of `hints.scribbles_on_paper`);
  palette           colours, not pixels: for each band and each of its PALETTE_TOP hint colours,
                    the error to the closest (least mean absolute RGB error) of the output band's
                    own PALETTE_TOP most frequent quantised colours, found as
                    `hints.palette_colors` finds them on the host; each image counts
                    PALETTE_BANDS x PALETTE_TOP hint colours.

Blur hints (a dense blurred colour map, no colour set at a pixel), `none` and task="sketch" have
no hint error.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxcolor.data import hints as hints_lib
from jaxcolor.data.hints import PALETTE_BANDS, PALETTE_LEVELS, PALETTE_TOP

# The definition above, for reports (the quality table's legend).
DEFINITION = (
    "the mean absolute RGB error on the 0-255 scale between the output (as the 8-bit image a "
    "user gets) and the hint colours, pooled over every hinted pixel of a set"
)
TARGET = (
    "the target itself scored as an output: how far the hint colours are from the true pixels "
    "(points hold a patch mean, strokes their most frequent colour), what a model reproducing "
    "the truth would score"
)


def method(config: ml_collections.ConfigDict) -> str | None:
    """`data.hints` when its hints carry colours at known pixels or bands, else None."""
    if config.task == "sketch":
        return None
    spec = hints_lib.hint_spec(config.data.hints)
    return spec.name if spec.hinted_pixels is not None or spec.palette else None


def levels(x: jax.Array) -> jax.Array:
    """[-1, 1] -> the 0..255 levels of the 8-bit image (float32, rounded, clipped)."""
    return jnp.clip(jnp.round((x.astype(jnp.float32) + 1.0) * 127.5), 0.0, 255.0)


def hinted_pixels(hints, hint_method: str):
    """Hint channels as 0..255 levels (B, H, W, C) -> (hint colours (B, H, W, 3) float32, bool
    mask (B, H, W) of the pixels that carry one, by `hints.hinted_pixels`) for the methods whose
    spec marks them. Works on device arrays and on numpy arrays alike (the sample sheet draws
    with it)."""
    return hints[..., :3].astype(np.float32), hints_lib.hinted_pixels(hints, hint_method)


def _bands(height: int) -> list[np.ndarray]:
    """The rows of each palette band, split as `hints.palette_colors` splits them."""
    return np.array_split(np.arange(height), PALETTE_BANDS)


def palette_colors(image: jax.Array) -> jax.Array:
    """(B, H, W, 3) 0..255 levels -> (B, PALETTE_BANDS, PALETTE_TOP, 3) each band's most
    frequent quantised colours (level centres), as `hints.palette_colors` computes them."""
    step, colors = 256 // PALETTE_LEVELS, PALETTE_LEVELS**3
    q = image.astype(jnp.int32) // step
    keys = (q[..., 0] * PALETTE_LEVELS + q[..., 1]) * PALETTE_LEVELS + q[..., 2]
    band = np.concatenate([np.full(len(rows), i) for i, rows in enumerate(_bands(image.shape[1]))])
    keys = keys + jnp.asarray(band * colors, jnp.int32)[None, :, None]  # one histogram per band
    count = jax.vmap(lambda k: jnp.bincount(k, length=PALETTE_BANDS * colors))
    counts = count(keys.reshape(keys.shape[0], -1)).reshape(-1, PALETTE_BANDS, colors)
    # top_k puts the lower index (the smaller r, g, b key) first among equal counts, as the
    # host's stable argsort does; a band with fewer colours repeats its most frequent one.
    found, top = jax.lax.top_k(counts, PALETTE_TOP)
    top = jnp.where(found > 0, top, top[..., :1])
    rgb = jnp.stack(
        [top // PALETTE_LEVELS**2, (top // PALETTE_LEVELS) % PALETTE_LEVELS, top % PALETTE_LEVELS],
        axis=-1,
    )
    return (rgb * step + step // 2).astype(jnp.float32)


def _palette_hint_colors(hints: jax.Array) -> jax.Array:
    """Palette hint planes as 0..255 levels (B, H, W, 3 * PALETTE_TOP) -> (B, PALETTE_BANDS,
    PALETTE_TOP, 3): the colours the user gave each band."""
    firsts = [int(rows[0]) for rows in _bands(hints.shape[1])]
    per_band = hints[:, firsts, 0, :].astype(jnp.float32)  # (B, bands, 3 * top)
    return per_band.reshape(*per_band.shape[:2], PALETTE_TOP, 3)


def per_image(output: jax.Array, condition: jax.Array, hint_method: str):
    """(sum of |error| over hinted pixels and channels, 3 x hinted pixels) per image, shapes
    (B,) float32 and (B,) int32. `output` (B, H, W, 3) and `condition` (the generator's input:
    sketch ++ hints) are in [-1, 1]."""
    out, hints = levels(output), levels(condition[..., 1:])
    if hints_lib.hint_spec(hint_method).palette:
        given, own = _palette_hint_colors(hints), palette_colors(out)
        distance = jnp.abs(given[:, :, :, None] - own[:, :, None]).sum(axis=-1)
        count = 3 * PALETTE_BANDS * PALETTE_TOP
        return distance.min(axis=-1).sum(axis=(1, 2)), jnp.full(out.shape[:1], count, jnp.int32)
    colors, mask = hinted_pixels(hints, hint_method)
    error = jnp.where(mask, jnp.abs(out - colors).sum(axis=-1), 0.0)
    return error.sum(axis=(1, 2)), 3 * mask.sum(axis=(1, 2), dtype=jnp.int32)
