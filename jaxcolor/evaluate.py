"""`python -m jaxcolor.evaluate --workdir W [--split val|train] [--step N] [--batch-size B]
[--max-images N] [--fid-weights PATH] [--json PATH]`: a checkpoint's PSNR / SSIM (/ FID)."""

from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jaxcolor.evaluate",
        description="Score a training checkpoint's generator on a whole split: mean L1, PSNR "
        "and SSIM (and FID with --fid-weights); written to TensorBoard and a JSON file.",
    )
    parser.add_argument(
        "--workdir", required=True, help="run directory of python -m jaxcolor.train"
    )
    parser.add_argument("--split", default="val", help="val (default) or train")
    parser.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
    parser.add_argument(
        "--batch-size", type=int, help="global batch (default: the run's eval_batch_size)"
    )
    parser.add_argument(
        "--max-images", type=int, default=0, help="score only the first N images (0 = all)"
    )
    parser.add_argument(
        "--fid-weights",
        help="pytorch-fid Inception weights (pt_inception-2015-12-05-6726825d.pth, or the same "
        "keys as .safetensors/.npz); without it FID is skipped (nothing is downloaded)",
    )
    parser.add_argument("--json", help="report path (default: WORKDIR/eval/<split>-<step>.json)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Imported after parsing so that --help answers at once.
    from jaxcolor.core.errors import JaxcolorError
    from jaxcolor.evaluation.evaluator import evaluate_checkpoint

    try:
        report = evaluate_checkpoint(
            args.workdir,
            split=args.split,
            step=args.step,
            batch_size=args.batch_size,
            max_images=args.max_images,
            fid_weights=args.fid_weights,
            json_path=args.json,
        )
    except JaxcolorError as e:
        sys.exit(f"jaxcolor.evaluate: error: {e}")
    for column, values in report["metrics"].items():
        shown = "  ".join(f"{k} {v:.4f}" for k, v in values.items())
        where = f"{report['split']} step {report['step']} [{column}, {report['num_images']} images]"
        print(f"{where}: {shown}")
    print(f"report: {report['json']}")


if __name__ == "__main__":
    main()
