"""`image_size`: one int (square) or a (height, width) pair; `image_hw` reads it everywhere.

Pure Python (no JAX, no numpy needed), so the data pipeline, config checks, the export's
config.json and the benchmark share one reading of the key. On the command line:
`--config.image_size=64` (square) or `--config.image_size='(160, 256)'` (height, width).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jaxcolor.core.errors import ConfigError


def hw(image_size: Any) -> tuple[int, int]:
    """An `image_size` value -> (height, width): an int is square; (h, w) or [h, w] a pair.

    A 1-element sequence (what `--config.image_size=64` gives a pair-valued field) is square.
    """
    if isinstance(image_size, bool):
        sizes = None
    elif isinstance(image_size, int) or hasattr(image_size, "__index__"):
        sizes = (int(image_size), int(image_size))
    elif isinstance(image_size, Sequence) and not isinstance(image_size, str):
        sizes = tuple(image_size)
        if len(sizes) == 1:
            sizes = sizes * 2
        if len(sizes) != 2 or not all(
            isinstance(s, int) or (hasattr(s, "__index__") and not isinstance(s, bool))
            for s in sizes
        ):
            sizes = None
        else:
            sizes = (int(sizes[0]), int(sizes[1]))
    else:
        sizes = None
    if sizes is None or min(sizes) < 1:
        raise ConfigError(
            f"image_size must be a positive int (square) or a (height, width) pair of positive "
            f"ints, got {image_size!r}; e.g. --config.image_size=256 or "
            "--config.image_size='(160, 256)'."
        )
    return sizes


def image_hw(config: Mapping[str, Any] | Any) -> tuple[int, int]:
    """(height, width) of the training images of `config` (a ConfigDict or a plain dict)."""
    return hw(config["image_size"])


def describe(image_size: Any) -> str:
    """'256' for a square size, '160x256' (height x width) otherwise, for messages and logs."""
    h, w = hw(image_size)
    return str(h) if h == w else f"{h}x{w}"


def to_json(image_size: Any) -> int | list[int]:
    """An int for a square size (as before pairs existed), else [height, width]."""
    h, w = hw(image_size)
    return h if h == w else [h, w]
