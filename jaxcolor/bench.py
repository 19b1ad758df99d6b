"""`python -m jaxcolor.bench {train,e2e,compare,data} [--config FILE] [--steps N] [--json OUT]
[--config.key=value ...]`: throughput of the GAN step (see jaxcolor.run.benchmark).

- train: the jitted step on a synthetic device-resident batch: compile time, step time,
  images/s, FLOPs per image (XLA and analytic), MFU, peak device memory.
- e2e: the same fed by the real input pipeline; reports whether the step is input-bound.
- compare: `train` and jaxcolor.torch_bench (PyTorch) on the same device and shapes,
  in one process; prints JAX img/s / PyTorch img/s per PyTorch variant.
- data: the host input pipeline alone (decode, crop, sketch, hints, batch) for each Grain
  worker count: images/s and images per CPU-second (see jaxcolor.data.throughput).
- aot: the train and eval steps compiled ahead of time for a Cloud TPU slice on this host
  (needs libtpu, not a TPU): per-chip HBM against the chip's, fits or not, FLOPs, roofline,
  host input rate; --search finds the largest per-chip batch (see jaxcolor.run.aot).
- quality: `quality --images DIR [--minutes M | --steps N] [--hints blur,points,...] [--out DIR]`
  trains a recipe (default configs/cpu128.py, its argument the hint method) for each hint
  method on an image folder, scores its held-out split beside the baselines and writes the
  table (OUT/quality.md, OUT/quality.json) and each method's record and sample sheet (see
  jaxcolor.run.quality).

Each subcommand is one `_add_<name>` (its arguments) and one `_<name>` (what it runs) in
SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any

from absl import flags
from ml_collections import config_flags

import jaxcolor
from jaxcolor import cli
from jaxcolor import config as base_config
from jaxcolor.core import platform_env
from jaxcolor.core.errors import ConfigError
from jaxcolor.core.image_files import IMAGE_EXTENSIONS

PROG = "jaxcolor.bench"
# Without --config: the base every config builds on (what configs/default.py returns). It is a
# config file of the installed package, so bench needs no checkout: any directory, any install.
DEFAULT_CONFIG = base_config.__file__
# benchmarks/README.md, "Input pipeline": images per CPU-second on a Xeon of each data.derive
# path, xdog sketches + blur hints (the default config's): "host" from 512 px JPEGs with 2 Grain
# workers (the figure before the device path existed), "device" TODO. `bench aot`'s host input
# report divides by the run's path's figure unless `--data_json` gives this host's own.
MEASURED_PER_CORE = {"host": 295.0, "device": 295.0}
CONFIG_HELP = "config .py (default: jaxcolor/config.py, the base configs/default.py returns)"
# bench quality's recipe: here, or beside the package in a source checkout.
QUALITY_CONFIG = "configs/cpu128.py"
QUALITY_HINTS = "blur,points,strokes,none"
# Set by bench quality's own options, not by --config.KEY=VALUE.
QUALITY_KEYS = {
    "num_steps": "--steps N or --minutes M",
    "data.source": "--images DIR",
    "data.hints": "--hints (the config's argument)",
}
# Subcommands that load their configs themselves (one per hint method): they get the overrides.
OWN_CONFIGS = ("quality",)


def load_config(path: str, overrides: list[str]):
    """configs/*.py plus `--config.key=value` overrides, parsed as jaxcolor.train does: a
    command-line mistake exits with one line."""
    bad = [a for a in overrides if not a.startswith("--config.")]
    if bad:
        sys.exit(
            f"{PROG}: error: unexpected arguments {bad}; config overrides look like "
            "--config.key=value"
        )
    argv = ["bench", f"--config={path}", *overrides]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config", path, flag_values=values, lock_config=True, sys_argv=argv
    )
    cli.parse_config_flags(PROG, argv, values)
    return values.config


def _common(p: argparse.ArgumentParser, steps: int) -> None:
    p.add_argument("--config", default=DEFAULT_CONFIG, help=CONFIG_HELP)
    p.add_argument("--steps", type=int, default=steps, help="timed steps (after the warmup)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps after compilation")
    p.add_argument("--json", help="also write the results to this JSON file")


def _add_train(p: argparse.ArgumentParser) -> None:
    _common(p, steps=10)


def _add_e2e(p: argparse.ArgumentParser) -> None:
    _common(p, steps=10)


def _add_compare(p: argparse.ArgumentParser) -> None:
    _common(p, steps=3)
    p.add_argument(
        "--torch_variants",
        default="eager_fp32,eager_bf16_cl,compile",
        help="comma-separated PyTorch variants (jaxcolor.torch_bench.VARIANTS)",
    )
    p.add_argument("--torch_device", help="default: cuda when JAX runs on a GPU, else cpu")


def _train(args, config) -> dict[str, Any]:
    from jaxcolor.run import benchmark

    return benchmark.bench_train(config, steps=args.steps, warmup=args.warmup)


def _e2e(args, config) -> dict[str, Any]:
    from jaxcolor.run import benchmark

    return benchmark.bench_e2e(config, steps=args.steps, warmup=args.warmup)


def _torch_reference():
    """jaxcolor.torch_bench (the PyTorch GAN step), which needs PyTorch."""
    if importlib.util.find_spec("torch") is None:
        sys.exit(f"{PROG}: error: bench compare needs PyTorch: pip install 'jaxcolor[serve]'.")
    from jaxcolor import torch_bench

    return torch_bench


def _compare(args, config) -> dict[str, Any]:
    import jax

    from jaxcolor.core.image_size import image_hw
    from jaxcolor.nets.pix2pix import spec as pix2pix
    from jaxcolor.run import benchmark

    unet = pix2pix.UNET.name
    if config.model.generator.name != unet or config.loss.gan_mode == "none":
        raise SystemExit(
            f"bench compare times pix2pix (model.generator.name={unet!r} with a discriminator); "
            f"this config has model.generator.name={config.model.generator.name!r}, "
            f"loss.gan_mode={config.loss.gan_mode!r}. Use bench train for it."
        )
    reference = _torch_reference()
    if jax.device_count() != 1:
        print(f"note: JAX uses {jax.device_count()} devices, PyTorch one", file=sys.stderr)
    jax_result = benchmark.bench_train(config, steps=args.steps, warmup=args.warmup)
    device = args.torch_device or ("cuda" if jax.default_backend() == "gpu" else "cpu")
    arch = reference.arch_from_config(config)
    torch_results = []
    for variant in args.torch_variants.split(","):
        result = reference.run_safely(
            arch,
            variant=variant,
            batch=config.batch_size,
            image_size=image_hw(config),
            steps=args.steps,
            warmup=args.warmup,
            device=device,
        )
        if "images_per_s" in result:
            result["jax_over_torch"] = jax_result["images_per_s"] / result["images_per_s"]
        torch_results.append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)
    ok = [r for r in torch_results if "images_per_s" in r]
    best = max(ok, key=lambda r: r["images_per_s"]) if ok else None
    return {
        "mode": "compare",
        "shapes": {
            "batch_size": config.batch_size,
            "image_size": jax_result["image_size"],
            "condition_channels": arch["generator"]["in_channels"],
            "jax_compute_dtype": config.compute_dtype,
        },
        "jax": jax_result,
        "torch": torch_results,
        "jax_over_best_torch": (
            jax_result["images_per_s"] / best["images_per_s"] if best else "n/a"
        ),
        "best_torch_variant": best["variant"] if best else "n/a",
    }


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=DEFAULT_CONFIG, help=CONFIG_HELP)
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument(
        "--workers", type=int, nargs="+", default=[0, 1, 2], help="Grain worker counts to run"
    )
    p.add_argument("--batch_size", type=int, default=32, help="per-process batch")
    p.add_argument(
        "--derive",
        nargs="+",
        choices=("host", "device"),
        default=["host", "device"],
        help="data.derive paths to run side by side: host (sketches and hints in the pipeline) "
        "and device (colour crops only; the step derives them)",
    )
    p.add_argument("--sketch", default="xdog", help="data.sketch for the run")
    p.add_argument("--hints", default="points", help="data.hints for the run")
    p.add_argument(
        "--files",
        type=int,
        default=2048,
        help="JPEGs to write and read (Grain's shuffle: 0.2 ms per image over 256, 0.04 over 2048)",
    )
    p.add_argument("--source_size", type=int, default=512, help="side of those JPEGs (px)")
    p.add_argument("--images", help="read this image folder instead of writing JPEGs")
    p.add_argument("--batches", type=int, default=20, help="timed batches per worker count")
    p.add_argument("--warmup", type=int, default=3, help="untimed batches first")


def _data(args, config) -> dict[str, Any]:
    from jaxcolor.core.image_size import to_json
    from jaxcolor.data import throughput

    with config.unlocked():
        config.batch_size = args.batch_size
        config.data.sketch, config.data.hints = args.sketch, args.hints
    results = throughput.run(
        config,
        args.workers,
        derive=tuple(args.derive),
        num_files=args.files,
        source_size=args.source_size,
        batches=args.batches,
        warmup=args.warmup,
        folder=args.images,
        echo=lambda line: print(line, file=sys.stderr, flush=True),
    )
    return {
        "mode": "data",
        "image_size": to_json(config.image_size),
        "source": args.images or f"{args.files} synthetic {args.source_size}px JPEGs",
        "sketch": args.sketch,
        "hints": args.hints,
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
        "results": [
            {
                "derive": r.derive,
                "workers": r.workers,
                "images_per_s": r.images_per_second,
                "images_per_core_s": r.images_per_cpu_second,
                "cores_busy": r.cpu_seconds / r.seconds,
            }
            for r in results
        ],
    }


def _add_aot(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=DEFAULT_CONFIG, help=CONFIG_HELP)
    p.add_argument(
        "--topology",
        required=True,
        help="Cloud TPU accelerator type as gcloud names it: v5litepod-8, v5p-64, v4-32, v6e-8 ...",
    )
    p.add_argument("--num_slices", type=int, default=1, help="multi-slice: slices of --topology")
    p.add_argument(
        "--batch_size",
        type=int,
        help="per-chip batch (global = this x chips); default: the config's batch_size",
    )
    p.add_argument("--search", action="store_true", help="find the largest per-chip batch")
    p.add_argument(
        "--search_step", type=int, default=0, help="--search's precision (0 = 5 %% of the max)"
    )
    p.add_argument("--no_eval", action="store_true", help="compile the train step only")
    p.add_argument(
        "--data_json",
        help="a `bench data --json` result: its best images per core-second of each path for "
        "the host input report (default: host {host:.0f}, device {device:.0f}; "
        "benchmarks/README.md)".format(**MEASURED_PER_CORE),
    )
    p.add_argument("--json", help="also write the results to this JSON file")


def _aot(args, config) -> dict[str, Any]:
    # The host only compiles: keep JAX itself on the CPU (an installed libtpu would otherwise
    # probe for local TPU chips first).
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from jaxcolor.run import aot

    per_core = dict(MEASURED_PER_CORE)
    if args.data_json:
        try:
            measured = json.loads(pathlib.Path(args.data_json).read_text())["results"]
            for path in per_core:  # a result from before the device path is the host's
                rates = [
                    r["images_per_core_s"] for r in measured if r.get("derive", "host") == path
                ]
                per_core[path] = max(rates, default=per_core[path])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ConfigError(
                f"--data_json={args.data_json}: not a `bench data --json` result ({e}); "
                "rerun python -m jaxcolor.bench data --json FILE."
            ) from None
    target, mesh = aot.target_mesh(args.topology, args.num_slices)
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise ConfigError(f"--batch_size={args.batch_size}: give a per-chip batch >= 1.")
        config = aot.with_batch(config, args.batch_size * mesh.devices.size)
    echo = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    echo(f"compiling for {args.topology} x{args.num_slices} ({mesh.devices.size} chips) ...")
    steps = aot.compile_steps(config, mesh, with_eval=not args.no_eval)
    result = aot.report(config, target, mesh, steps, images_per_core_s=per_core)
    if args.search:
        echo("searching the largest per-chip batch ...")
        result |= aot.search_max_batch(
            config,
            mesh,
            steps["train"],
            hbm_bytes=target.chip.hbm_gib * aot.GIB,
            step=args.search_step,
            echo=echo,
        )
    for line in aot.summary_lines(result):
        echo(line)
    return result


def _add_quality(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--images",
        help="folder of colour images, read recursively (local or gs://); the run "
        "holds out data.val_fraction of them and is scored on those",
    )
    p.add_argument(
        "--config",
        help=f"a config whose argument is the hint method (default: {QUALITY_CONFIG} in the "
        "current directory, else beside the package in a source checkout)",
    )
    p.add_argument(
        "--minutes",
        type=float,
        help="training budget per hint method, compilation and the config's evaluations "
        "included; the steps come from a rate measured first (default 45, the recipe's own)",
    )
    p.add_argument("--steps", type=int, help="train this many steps instead (no calibration)")
    p.add_argument(
        "--hints", default=QUALITY_HINTS, help="comma-separated hint methods, trained in order"
    )
    p.add_argument(
        "--out",
        default="runs/quality",
        help="OUT/<method> (the run), OUT/<method>.json, OUT/<method>-sheet.png, and the "
        "table of every <method>.json there: OUT/quality.md, OUT/quality.json",
    )
    p.add_argument("--samples", type=int, default=8, help="rows of each sample sheet")
    p.set_defaults(json=None)


def _quality(args, overrides: list[str]) -> dict[str, Any]:
    from jaxcolor.run import quality

    _check_budget(args)
    images = _checked_images(args.images)
    methods = _hint_methods(args.hints)
    path = _quality_config(args.config)
    _check_quality_overrides(overrides)
    configs = {m: _hinted_config(path, m, images, overrides) for m in methods}
    out = pathlib.Path(args.out)
    quality.check_fresh(out, methods)
    cli.show_info_logs()  # the training loop's progress lines
    return quality.run(
        configs,
        out,
        described={"config": path, "overrides": overrides, "images": images},
        steps=args.steps,
        minutes=args.minutes or quality.DEFAULT_MINUTES,
        samples=args.samples,
        echo=lambda line: print(line, file=sys.stderr, flush=True),
    )


def _check_budget(args) -> None:
    if args.minutes is not None and args.steps is not None:
        raise ConfigError(
            "--minutes and --steps exclude each other: --minutes M sets the steps from a rate "
            "measured first, --steps N sets them directly; give one."
        )
    if args.minutes is not None and args.minutes <= 0:
        raise ConfigError(f"--minutes {args.minutes:g}: give a training budget > 0 minutes.")
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps {args.steps}: give a number of steps >= 1.")
    if args.samples < 1:
        raise ConfigError(f"--samples {args.samples}: give a number of sheet rows >= 1.")


def _checked_images(images: str | None) -> str:
    """--images, checked to be a folder that holds images; passed on as given."""
    from etils import epath

    from jaxcolor.data import sources

    if not images:
        raise ConfigError(
            "--images: give the folder of colour images to train and score on: --images DIR "
            "(read recursively; local or gs://)."
        )
    if not epath.Path(images).is_dir():
        raise ConfigError(
            f"--images {images}: no such folder; pass --images DIR, an existing folder of "
            "colour images (read recursively)."
        )
    try:
        sources.ImageFolderSource(images)
    except ValueError:
        raise ConfigError(
            f"--images {images}: no images ({', '.join(IMAGE_EXTENSIONS)}) under it, "
            "searched recursively; pass a folder that holds colour images."
        ) from None
    return images


def _hint_methods(text: str) -> list[str]:
    """--hints as a list, each a known hint method."""
    from jaxcolor.data.hints import HINT_CHANNELS

    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in HINT_CHANNELS] or ([] if methods else [text])
    if unknown:
        raise ConfigError(
            f"--hints {text}: unknown hint method {unknown[0]!r}; give a comma-separated list "
            f"of {', '.join(HINT_CHANNELS)} (e.g. --hints blur,points)."
        )
    return list(dict.fromkeys(methods))


def _quality_config(path: str | None) -> str:
    """--config, checked to take the hint method as its argument; by default
    configs/cpu128.py here or beside the package."""
    if path is None:
        beside = pathlib.Path(jaxcolor.__file__).parents[1] / QUALITY_CONFIG
        found = [p for p in (pathlib.Path(QUALITY_CONFIG), beside) if p.is_file()]
        if not found:
            raise ConfigError(
                f"--config: no {QUALITY_CONFIG} in the current directory or beside the "
                "jaxcolor package; pass --config PATH/TO/cpu128.py (a config whose argument is "
                "the hint method)."
            )
        path = str(found[0])
    if ":" in pathlib.Path(path).name:
        raise ConfigError(
            f"--config {path}: give the file alone; the argument (the hint method) comes from "
            "--hints."
        )
    if not pathlib.Path(path).is_file():
        raise ConfigError(f"--config {path}: no such file; give a config .py file.")
    if not _takes_argument(path):
        raise ConfigError(
            f"--config {path}: its get_config() takes no argument, so it cannot be trained per "
            "hint method; pass a config whose argument is the hint method, such as "
            f"{QUALITY_CONFIG}."
        )
    return path


def _takes_argument(path: str) -> bool:
    """Whether the config file's get_config takes a positional argument (`FILE:ARG`)."""
    spec = importlib.util.spec_from_file_location("jaxcolor_quality_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    kinds = [p.kind for p in inspect.signature(module.get_config).parameters.values()]
    return any(k in (*positional, inspect.Parameter.VAR_POSITIONAL) for k in kinds)


def _check_quality_overrides(overrides: list[str]) -> None:
    for arg in overrides:
        key = arg.removeprefix("--config.").split("=", 1)[0]
        if key in QUALITY_KEYS:
            raise ConfigError(
                f"{arg}: bench quality sets {key} from {QUALITY_KEYS[key]}; use that instead."
            )


def _hinted_config(path: str, method: str, images: str, overrides: list[str]):
    """`path`:`method` reading `images`, with the user's overrides."""
    from jaxcolor.data.pipeline import FOLDER

    config = load_config(f"{path}:{method}", [f"--config.data.source={FOLDER}{images}", *overrides])
    if config.data.hints != method:
        raise ConfigError(
            f"--config {path}: {path}:{method} trains data.hints={config.data.hints!r}, so its "
            f"argument is not the hint method; pass a config whose argument is, such as "
            f"{QUALITY_CONFIG}."
        )
    return config


SUBCOMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "train": ("GAN step on a synthetic device-resident batch", _add_train, _train),
    "e2e": ("GAN step fed by the real input pipeline", _add_e2e, _e2e),
    "compare": ("JAX step vs the PyTorch reference, same device", _add_compare, _compare),
    "data": ("host input pipeline images/s per Grain worker count", _add_data, _data),
    "aot": ("compile the steps for a Cloud TPU slice: memory, FLOPs, max batch", _add_aot, _aot),
    "quality": (
        "train a recipe per hint method on an image folder; the quality table",
        _add_quality,
        _quality,
    ),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jaxcolor.bench", allow_abbrev=False)
    sub = p.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, _) in SUBCOMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, allow_abbrev=False))
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from jaxcolor.core.errors import JaxcolorError

    args, overrides = parser().parse_known_args(argv)
    if args.command in OWN_CONFIGS:
        config = overrides
    else:
        config = load_config(args.config, overrides)
    platform_env.skip_absent_tpu()  # no libtpu errors on a host without a TPU
    try:
        result = SUBCOMMANDS[args.command][2](args, config)
    except JaxcolorError as e:  # a config or data mistake: the message says what to change
        sys.exit(f"{PROG}: error: {e}")
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text + "\n")
    return result


if __name__ == "__main__":
    # This process is bench's: absl's own flags (logging's) take their defaults, as an absl app's
    # would, so its log lines need no "before flag parsing" note.
    flags.FLAGS(sys.argv[:1])
    main()
