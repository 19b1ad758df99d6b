"""Trivial colorizers scored beside the model, so that no quality figure stands alone.

Each baseline is computed on device from the same generator input (`condition`: sketch ++ hints,
as the model receives it) and target as the model's prediction, and is scored by the same
metrics over the same images:

  grey          a flat 50 % grey image;
  mean_color    each image's own mean colour, flat: an oracle (it reads the target), the best
                PSNR any flat colour can reach on that image;
  hints         (blur, palette) the hint image itself as the output; palette: plane 1, each
                band's most frequent colour;
  sketch+hints  (points, strokes, scribbles) the sketch, grey repeated to RGB (it carries no
                luminance of the colour image), with the hinted pixels pasted in their colours.

Reference-guided models get the same baselines for both columns: none reads the reference, and
"the reference as output" is no baseline, since the paired evaluation reference IS the target.
task="sketch" (colour -> sketch) gets the flat ones only: grey and the mean level.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jaxcolor.data import hints as hints_lib
from jaxcolor.evaluation import hint_fidelity

GREY, MEAN_COLOR, HINTS, SKETCH_HINTS = "grey", "mean_color", "hints", "sketch+hints"
# What each baseline is, in the words above (the quality table's legend).
DESCRIPTIONS = {
    GREY: "a flat 50 % grey image",
    MEAN_COLOR: "each image's own mean colour, flat: an oracle (it reads the target), the best "
    "PSNR any flat colour can reach on that image",
    HINTS: "(blur, palette) the hint image itself as the output; palette: plane 1, each band's "
    "most frequent colour",
    SKETCH_HINTS: "(points, strokes, scribbles) the sketch, grey repeated to RGB (it carries no "
    "luminance of the colour image), with the hinted pixels pasted in their colours",
}


def names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The baselines that make sense for `config`, in report order."""
    if config.task == "sketch":
        return GREY, MEAN_COLOR
    spec = hints_lib.hint_spec(config.data.hints)  # as_image, hinted_pixels: see HintSpec
    if spec.as_image:
        return GREY, MEAN_COLOR, HINTS
    if spec.hinted_pixels is not None:
        return GREY, MEAN_COLOR, SKETCH_HINTS
    return GREY, MEAN_COLOR


def _sketch_with_hints(condition: jax.Array, method: str) -> jax.Array:
    sketch = jnp.repeat(condition[..., :1], 3, axis=-1)
    colors, mask = hint_fidelity.hinted_pixels(hint_fidelity.levels(condition[..., 1:]), method)
    return jnp.where(mask[..., None], colors / 127.5 - 1.0, sketch)


def images(
    condition: jax.Array, target: jax.Array, config: ml_collections.ConfigDict
) -> dict[str, jax.Array]:
    """{name: baseline output}, each shaped like `target` and in [-1, 1] (see `names`)."""
    out = {}
    for name in names(config):
        if name == GREY:
            # The barrier keeps XLA from constant-folding what is computed from this constant
            # image (the palette histograms' sorts take it seconds per band in the folder).
            out[name] = jax.lax.optimization_barrier(jnp.zeros_like(target))
        elif name == MEAN_COLOR:
            out[name] = jnp.broadcast_to(target.mean(axis=(1, 2), keepdims=True), target.shape)
        elif name == HINTS:
            out[name] = condition[..., 1:4]
        else:
            out[name] = _sketch_with_hints(condition, config.data.hints)
    return out
