"""`python -m jaxcolor.evaluate --workdir W [--split val|train | --source folder:DIR|tfds:NAME
[--data_dir D] [--source_split S]] [--step N] [--batch_size B] [--max_images N]
[--fid_weights PATH] [--json PATH] [--samples N] [--sheet PATH.png]`: a checkpoint's PSNR / SSIM
(/ FID) beside trivial baselines, its hint fidelity, and a sample sheet."""

from __future__ import annotations

import argparse
import sys

from jaxcolor.core import platform_env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jaxcolor.evaluate",
        description="Score a training checkpoint's generator on a whole split or another set: "
        "mean L1, PSNR and SSIM (and FID with --fid_weights) beside trivial baselines (gain_db: "
        "over the best of them), hint fidelity (hint_error) and a sample sheet; written to "
        "TensorBoard and a JSON file.",
    )
    parser.add_argument(
        "--workdir", required=True, help="run directory of python -m jaxcolor.train"
    )
    parser.add_argument("--split", help="the run's own split to score: val (the default) or train")
    parser.add_argument(
        "--source",
        help="score another set instead, read as the run's validation images: folder:DIR "
        "(every image under DIR, recursively) or tfds:NAME (a dataset under --data_dir)",
    )
    parser.add_argument("--data_dir", help="TFDS data_dir of --source tfds:NAME")
    parser.add_argument(
        "--source_split",
        help="split of --source tfds:NAME (default: its validation split, as training "
        "validates: validation, val or test, else train)",
    )
    parser.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
    parser.add_argument(
        "--batch_size", type=int, help="global batch (default: the run's eval_batch_size)"
    )
    parser.add_argument(
        "--max_images", type=int, default=0, help="score only the first N images (0 = all)"
    )
    parser.add_argument(
        "--fid_weights",
        help="pytorch-fid Inception weights (pt_inception-2015-12-05-6726825d.pth, or the same "
        "keys as .safetensors/.npz); without it FID is skipped (nothing is downloaded)",
    )
    parser.add_argument(
        "--json",
        help="report path (default: WORKDIR/eval/<set>-<step>.json; <set> is the split, or "
        "folder_<name> / tfds_<name>_<split> for --source)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=0,
        help="write a sample sheet of the first N scored images (default 8 with --sheet)",
    )
    parser.add_argument(
        "--sheet",
        help="sample sheet path, .png (default: WORKDIR/eval/<set>-<step>.png): one row per "
        "image, sketch | hints | (reference) | output | target",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    platform_env.skip_absent_tpu()  # no libtpu errors on a host without a TPU
    # Imported after parsing so that --help answers at once.
    from jaxcolor.core.errors import JaxcolorError
    from jaxcolor.evaluation.evaluator import describe, evaluate_checkpoint

    try:
        report = evaluate_checkpoint(
            args.workdir,
            split=args.split,
            step=args.step,
            batch_size=args.batch_size,
            max_images=args.max_images,
            fid_weights=args.fid_weights,
            json_path=args.json,
            source=args.source,
            data_dir=args.data_dir,
            source_split=args.source_split,
            samples=args.samples,
            sheet_path=args.sheet,
        )
    except JaxcolorError as e:
        sys.exit(f"jaxcolor.evaluate: error: {e}")
    print(describe(report))
    print(f"report: {report['json']}")
    if "sheet" in report:
        print(f"sample sheet: {report['sheet']}")


if __name__ == "__main__":
    main()
