"""`python -m jaxcolor.export --workdir W [--step N] --out DIR [--with_discriminator]
[--format torchscript] [--format onnx]`: a training checkpoint -> PyTorch weights + config.json.
"""

from __future__ import annotations

import argparse
import sys

from jaxcolor.core import platform_env
from jaxcolor.export import FORMATS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jaxcolor.export",
        description="Write a training checkpoint as PyTorch weights (safetensors) + config.json.",
    )
    parser.add_argument(
        "--workdir", required=True, help="run directory of python -m jaxcolor.train"
    )
    parser.add_argument("--step", type=int, help="checkpoint step to export (default: the newest)")
    parser.add_argument("--out", required=True, help="directory to write the export into")
    parser.add_argument(
        "--with_discriminator",
        action="store_true",
        help="also write discriminator.safetensors (to fine-tune elsewhere)",
    )
    parser.add_argument(
        "--format",
        action="append",
        choices=FORMATS,
        default=[],
        help="extra generator formats (repeatable); safetensors + config.json are always written",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    platform_env.skip_absent_tpu()  # no libtpu errors on a host without a TPU
    # Imported after parsing so that --help answers at once (JAX and Orbax take seconds).
    from jaxcolor.core.errors import JaxcolorError
    from jaxcolor.export.exporter import export

    try:
        written = export(
            args.workdir,
            args.out,
            step=args.step,
            with_discriminator=args.with_discriminator,
            formats=tuple(dict.fromkeys(["safetensors", *args.format])),
        )
    except JaxcolorError as e:
        sys.exit(f"jaxcolor.export: error: {e}")
    for what, path in written.items():
        print(f"{what}: {path}")


if __name__ == "__main__":
    main()
