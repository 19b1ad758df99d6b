"""`python -m jaxcolor.prepare --images DIR --out DATA_DIR [--name NAME] [--val_fraction 0.02]
[--max_side 512] [--layout single|paired]`: an image folder -> a TFDS ArrayRecord dataset.

Train on it with `--config.data.source=tfds:NAME --config.data.data_dir=DATA_DIR`.
"""

from __future__ import annotations

import argparse
import sys

from jaxcolor.core import platform_env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jaxcolor.prepare",
        description="Pack a folder of colour images into a TFDS dataset (ArrayRecord files) "
        "that training reads with data.source=tfds:NAME. Unusable files are skipped and listed.",
    )
    parser.add_argument("--images", required=True, help="folder of images (searched recursively)")
    parser.add_argument("--out", required=True, help="TFDS data_dir to write into (data.data_dir)")
    parser.add_argument("--name", help="dataset name (default: from the folder name)")
    parser.add_argument(
        "--val_fraction", type=float, default=0.02, help="share held out as 'validation'"
    )
    parser.add_argument(
        "--max_side",
        type=int,
        default=512,
        help="shrink images so the long side is at most this (aspect kept); 0 keeps sizes",
    )
    parser.add_argument(
        "--layout",
        choices=("single", "paired"),
        default="single",
        help="paired: each file holds colour (left) and its sketch (right); the sketch is "
        "stored too, for data.sketch=dataset",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    parser.add_argument("--workers", type=int, help="decoding threads (default: up to 8)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing dataset of that name"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    platform_env.skip_absent_tpu()  # no libtpu errors on a host without a TPU
    # Imported after parsing so that --help answers at once.
    from jaxcolor.core.errors import JaxcolorError
    from jaxcolor.data.tfds_builder import prepare

    try:
        summary = prepare(
            args.images,
            args.out,
            args.name,
            val_fraction=args.val_fraction,
            max_side=args.max_side,
            layout=args.layout,
            overwrite=args.overwrite,
            seed=args.seed,
            workers=args.workers,
        )
    except JaxcolorError as e:
        sys.exit(f"jaxcolor.prepare: error: {e}")
    print("\n".join(summary.lines()))
    name = summary.directory.rstrip("/").split("/")[-2]
    print(
        f"Train with: --config.data.source=tfds:{name} --config.data.data_dir={args.out}"
        + (" --config.data.sketch=dataset" if args.layout == "paired" else "")
    )


if __name__ == "__main__":
    main()
