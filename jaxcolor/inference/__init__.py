"""Colorize sketches with an exported generator in PyTorch; imports no JAX.

    runtime.py  the exported generator loaded (`load` -> `Colorizer`), padding, batched runs
    inputs.py   decoding, option checks and input preparation shared by colorize and the server
    files.py    colorize's files: globbing, hint files per sketch, output paths, `colorize_files`

`python -m jaxcolor.colorize` (files) and `python -m jaxcolor.serve` (uploads) both go through
`check_options`, `decode_image` and `prepare_inputs`, then `Colorizer.run`, which takes a batch of
images of one padded shape. The names below are the package's interface.
"""

from jaxcolor.inference.files import (
    IMAGE_EXTENSIONS,
    colorize_files,
    expand_sketches,
    hints_for,
    output_paths,
)
from jaxcolor.inference.inputs import (
    ImageTooLarge,
    UnreadableImage,
    check_options,
    decode_image,
    hint_channels,
    hint_channels_for,
    parse_hint_points,
    point_hint_channels,
    prepare_inputs,
    read_image,
    reference_image,
    reference_view,
    require_paint,
    resize_short_side,
    short_side_hw,
    to_sketch,
)
from jaxcolor.inference.runtime import Colorizer, Prepared, load, pad_to_multiple

__all__ = [
    "IMAGE_EXTENSIONS",
    "Colorizer",
    "ImageTooLarge",
    "Prepared",
    "UnreadableImage",
    "check_options",
    "colorize_files",
    "decode_image",
    "expand_sketches",
    "hint_channels",
    "hint_channels_for",
    "load",
    "output_paths",
    "pad_to_multiple",
    "parse_hint_points",
    "point_hint_channels",
    "prepare_inputs",
    "read_image",
    "require_paint",
    "reference_image",
    "reference_view",
    "resize_short_side",
    "short_side_hw",
    "to_sketch",
    "hints_for",
]
