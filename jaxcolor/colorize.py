"""`python -m jaxcolor.colorize --model DIR --sketch S.png [--hints H.png] [--reference R.png]
--out O.png`.

PyTorch inference with an export of python -m jaxcolor.export; imports no JAX.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jaxcolor.colorize",
        description="Colorize line art with an exported jaxcolor generator (PyTorch, no JAX).",
    )
    parser.add_argument("--model", required=True, help="export directory (config.json + weights)")
    parser.add_argument(
        "--sketch", required=True, help="sketch image, or a quoted glob such as 'sketches/*.png'"
    )
    hints = parser.add_mutually_exclusive_group()
    hints.add_argument(
        "--hints",
        help="hint image, or a directory with one image per sketch, named like it. blur models: "
        "colour strokes (or a whole colour image) on white or transparent paper of the sketch's "
        "size, spread into a dense colour map with the training blur (white/transparent is "
        "unpainted paper: paint light colours slightly off-white); points/strokes/scribbles "
        "models: coloured dots/scribbles on white or transparent paper of the sketch's size; "
        "palette models: a colour reference image of any size",
    )
    hints.add_argument(
        "--hint_points",
        help='colour points "x,y,#rrggbb;..." in sketch pixels (points/strokes/scribbles models)',
    )
    parser.add_argument(
        "--point_size",
        type=int,
        default=3,
        help="side in pixels (at the model's working size) of each --hint_points square "
        "(training draws 1-9; default 3)",
    )
    parser.add_argument(
        "--reference",
        help="reference-guided models (configs/reference.py): a colour image whose colours the "
        "result takes (any size; scaled to cover the training image size and centre-cropped to it)",
    )
    parser.add_argument(
        "--size",
        type=int,
        help="resize so the shorter side has this many pixels before colorizing (default: as is)",
    )
    parser.add_argument(
        "--out", required=True, help="output image (one sketch) or directory (writes <name>.png)"
    )
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from jaxcolor.core.errors import JaxcolorError

    try:
        from jaxcolor import inference
    except ModuleNotFoundError as e:
        if e.name not in ("torch", "safetensors"):
            raise
        sys.exit(f"jaxcolor.colorize: error: needs {e.name}: pip install 'jaxcolor[serve]'")

    try:
        model = inference.load(args.model, args.device)
        written = inference.colorize_files(
            model,
            args.sketch,
            args.out,
            hints=args.hints,
            hint_points=args.hint_points,
            size=args.size,
            point_size=args.point_size,
            reference=args.reference,
        )
    except JaxcolorError as e:
        sys.exit(f"jaxcolor.colorize: error: {e}")
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
