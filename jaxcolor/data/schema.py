"""The batch schema: which arrays a batch holds for a config, with their shapes and dtypes.

One declaration read by the Grain transform (`pipeline.MakeExample` ships exactly these keys),
the benchmark's synthetic batches, the shapes the steps are compiled for ahead of time, and the
tests. Every array is uint8, (batch, height, width, channels):

- "color": the RGB image (the target; for task="sketch" the condition);
- "sketch": 1 channel, absent with data.sketch = "model:DIR" (made on device from "color");
- "hints": `HINT_CHANNELS[data.hints]` channels, absent with data.hints = "none";
- "reference": RGB, for reference-guided generators only.

Host batches also carry "skipped" (`SKIPPED`, int32 per example), which the pipeline's consumers
pop before a batch reaches a device (`pipeline.pop_skipped`). Pure numpy: no JAX here.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from jaxcolor.core.image_size import image_hw
from jaxcolor.data.hints import HINT_CHANNELS
from jaxcolor.data.sketch import is_model_sketch
from jaxcolor.nets import registry

DTYPE = np.dtype(np.uint8)
SKIPPED = "skipped"  # host only: unusable files passed over to reach each example


def channels(*, sketch: str, hints: str, reference: bool) -> dict[str, int]:
    """Key -> channels of one example for data.sketch `sketch`, data.hints `hints` and a
    generator that does (`reference`) or does not take a reference image."""
    out = {"color": 3}
    if not is_model_sketch(sketch):  # a sketch model makes it on device from the colours
        out["sketch"] = 1
    if HINT_CHANNELS[hints]:  # "none": no array at all (a zero-channel one cannot cross
        out["hints"] = HINT_CHANNELS[hints]  # Grain's worker boundary)
    if reference:
        out["reference"] = 3
    return out


def _config_channels(config: ml_collections.ConfigDict) -> dict[str, int]:
    """`channels` of `config`'s batches."""
    return channels(
        sketch=config.data.sketch,
        hints=config.data.hints,
        reference=registry.generator(config.model.generator).takes_reference,
    )


def shapes(
    config: ml_collections.ConfigDict, batch_size: int | None = None
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Key -> (shape, dtype) of a batch of `batch_size` (default config.batch_size) examples."""
    h, w = image_hw(config)
    n = batch_size or config.batch_size
    return {k: ((n, h, w, c), DTYPE) for k, c in _config_channels(config).items()}


def synthetic(
    config: ml_collections.ConfigDict,
    batch_size: int | None = None,
    *,
    processes: int = 1,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Random uint8 host arrays for one of `processes` processes: its rows of a batch of
    `batch_size` (default config.batch_size), by `shapes`."""
    rng = np.random.default_rng(seed)
    return {
        k: rng.integers(0, 256, (shape[0] // processes, *shape[1:]), dtype=dtype)
        for k, (shape, dtype) in shapes(config, batch_size).items()
    }
