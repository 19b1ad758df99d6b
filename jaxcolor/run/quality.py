"""The quality benchmark (`python -m jaxcolor.bench quality`): a recipe trained for each hint
method on a folder of images, its held-out split scored beside the trivial baselines, and one table
assembled from every method's record.

For each method: a training budget (`steps`, or `minutes` turned into steps by a calibration, the
real step fed by the real pipeline timed by `benchmark.bench_e2e`), `train_and_evaluate` into
OUT/<method>, `evaluate_checkpoint` on the run's own validation split with a sample sheet
(OUT/<method>-sheet.png), and the record OUT/<method>.json. After each method OUT/quality.md and
OUT/quality.json are rewritten from every OUT/<method>.json there, so runs made at different
times, or with different methods, assemble into one table.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import math
import os
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections

import jaxcolor
from jaxcolor.core.errors import ConfigError
from jaxcolor.core.image_size import to_json
from jaxcolor.data import pipeline
from jaxcolor.data.hints import HINT_CHANNELS
from jaxcolor.evaluation import baselines, hint_fidelity
from jaxcolor.evaluation.evaluator import GAIN, HINT_ERROR, PAIRED, TARGET, evaluate_checkpoint
from jaxcolor.run import benchmark
from jaxcolor.run.loop import train_and_evaluate

DEFAULT_MINUTES = 45.0  # the recipe's own training budget per hint method (issue 27)
CALIBRATION_STEPS, CALIBRATION_WARMUP = 10, 2
# Step counts that are a share of the run: scaled with num_steps (0 = off stays off).
SHARES = ("optimizer.decay_steps", "eval_every", "eval_split_every", "checkpoint_every")
TABLE, SUMMARY = "quality.md", "quality.json"


@dataclasses.dataclass(frozen=True)
class Rate:
    """A calibration: seconds per training step fed by the real pipeline, seconds to compile the
    step, and a generator forward's share of the step's FLOPs (what scoring an image costs
    against training on one)."""

    step_s: float
    compile_s: float
    forward_share: float


def _calibrate(config: ml_collections.ConfigDict) -> Rate:
    """`config`'s step fed by its pipeline, timed on this machine (`benchmark.bench_e2e`)."""
    result = benchmark.bench_e2e(config, steps=CALIBRATION_STEPS, warmup=CALIBRATION_WARMUP)
    flops = benchmark.analytic_step_flops(config)
    return Rate(result["step_s"], result["compile_s"], flops["g_forward"] / flops["step"])


def scaled(config: ml_collections.ConfigDict, num_steps: int) -> ml_collections.ConfigDict:
    """A copy of `config` that trains `num_steps` steps, each step count in SHARES keeping its
    share of the run (at least 1 step, at most the run)."""
    out = copy.deepcopy(config)
    factor = num_steps / config.num_steps
    out.num_steps = num_steps
    for key in SHARES:
        *parents, leaf = key.split(".")
        node = out
        for parent in parents:
            node = node[parent]
        if node[leaf] > 0:
            node[leaf] = min(num_steps, max(1, round(node[leaf] * factor)))
    return out


def evaluated_images(config: ml_collections.ConfigDict, val_images: int) -> int:
    """Images a run of `config` scores: the fixed batch at step 0, every `eval_every` steps and at
    the last; the validation split (`val_images`, up to `eval_max_images`, in whole batches) every
    `eval_split_every` steps and at the last."""
    runs = lambda every: math.ceil(config.num_steps / every)  # noqa: E731
    batch = config.eval_batch_size
    images = (1 + runs(config.eval_every)) * batch
    if config.eval_split_every > 0:
        split = (
            val_images if config.eval_max_images <= 0 else min(config.eval_max_images, val_images)
        )
        images += runs(config.eval_split_every) * math.ceil(split / batch) * batch
    return images


def overhead_seconds(config: ml_collections.ConfigDict, rate: Rate, val_images: int) -> float:
    """Seconds of a run of `config` besides its steps, estimated from `rate`: compiling the step,
    and each evaluation at a forward's share of that; scoring `evaluated_images` at a forward's
    share of a training image's time. Scaling the run keeps its shares, so the estimate holds for
    any num_steps (up to rounding)."""
    evaluators = 1 + (config.eval_split_every > 0)
    compile_s = rate.compile_s * (1 + evaluators * rate.forward_share)
    per_image = rate.step_s / config.batch_size * rate.forward_share
    return compile_s + evaluated_images(config, val_images) * per_image


def steps_for_minutes(
    config: ml_collections.ConfigDict, minutes: float, rate: Rate, val_images: int
) -> int:
    """The most steps whose run, with its compilation and evaluations (`overhead_seconds`), fits
    in `minutes` at `rate`."""
    overhead = overhead_seconds(config, rate, val_images)
    steps = math.floor((60 * minutes - overhead) / rate.step_s)
    if steps < 1:
        raise ConfigError(
            f"--minutes {minutes:g}: compiling and evaluating alone take about "
            f"{overhead / 60:.1f} min on this machine (a step {rate.step_s:.2f} s); give more "
            "--minutes, or --steps N."
        )
    return steps


def _planned(
    config: ml_collections.ConfigDict,
    *,
    steps: int | None,
    minutes: float,
    echo: Callable[[str], None],
) -> tuple[ml_collections.ConfigDict, dict[str, Any] | None]:
    """(`config` scaled to its budget, the calibration's record): `steps` as given, or else the
    steps that fit in `minutes` at a rate measured now (None without a calibration)."""
    if steps is not None:
        echo(f"training budget: --steps {steps:,}")
        return scaled(config, steps), None
    echo(
        f"calibrating: {CALIBRATION_STEPS} steps of batch {config.batch_size} fed by the "
        "pipeline, after compiling ..."
    )
    began = time.perf_counter()
    rate = _calibrate(config)
    val_images = len(pipeline.make_sources(config)[1])
    num_steps = steps_for_minutes(config, minutes, rate, val_images)
    overhead = overhead_seconds(config, rate, val_images)
    estimate = (overhead + num_steps * rate.step_s) / 60
    echo(
        f"calibration: {rate.step_s:.3f} s/step ({config.batch_size / rate.step_s:.1f} img/s), "
        f"compilation {rate.compile_s:.1f} s; {minutes:g} min -> {num_steps:,} steps "
        f"(~{estimate:.1f} min with compilation and evaluations)"
    )
    calibration = dataclasses.asdict(rate) | {
        "steps": CALIBRATION_STEPS,
        "seconds": round(time.perf_counter() - began, 1),
        "minutes": minutes,
        "val_images": val_images,
        "estimated_minutes": round(estimate, 2),
    }
    return scaled(config, num_steps), calibration


def check_fresh(out: pathlib.Path, methods: list[str]) -> None:
    """Refuses run directories that already hold checkpoints: training would resume them, and
    the time would not be a whole run's."""
    for method in methods:
        checkpoints = out / method / "checkpoints"
        if checkpoints.is_dir() and any(checkpoints.iterdir()):
            raise ConfigError(
                f"--out {out}: {out / method} already holds a {method} run; remove it (rm -r "
                f"{out / method}) or choose another --out. The table there assembles from every "
                "<method>.json, so other methods' records can stay."
            )


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    devices = jax.devices()
    return {
        "cpus": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "jax_devices": len(devices),
        "device_kind": devices[0].device_kind,
        "jax": jax.__version__,
    }


def _method_record(
    config: ml_collections.ConfigDict,
    out: pathlib.Path,
    method: str,
    *,
    steps: int | None,
    minutes: float,
    samples: int,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Trains `config` into OUT/<method> within its budget, scores its validation split with a
    sample sheet; -> its figures for the method's record."""
    config, calibration = _planned(config, steps=steps, minutes=minutes, echo=echo)
    workdir = out / method
    estimate = f" (~{calibration['estimated_minutes']:.0f} min)" if calibration else ""
    echo(f"training {config.num_steps:,} steps{estimate} into {workdir} ...")
    began = time.perf_counter()
    train_and_evaluate(config, str(workdir))
    train_s = time.perf_counter() - began
    echo(f"trained in {train_s / 60:.1f} min; evaluating the validation split ...")
    sheet = out / f"{method}-sheet.png"
    began = time.perf_counter()
    report = evaluate_checkpoint(str(workdir), split="val", samples=samples, sheet_path=str(sheet))
    return {
        "num_steps": config.num_steps,
        "batch_size": config.batch_size,
        "image_size": to_json(config.image_size),
        "budget": {"steps": steps} if steps is not None else {"minutes": minutes},
        "calibration": calibration,
        "train_minutes": round(train_s / 60, 2),
        "steps_per_s": round(config.num_steps / train_s, 3),
        "eval_minutes": round((time.perf_counter() - began) / 60, 2),
        "workdir": str(workdir),
        "eval": report,
        "sheet": report.get("sheet"),
        "jaxcolor": jaxcolor.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }


def run(
    configs: dict[str, ml_collections.ConfigDict],
    out: pathlib.Path,
    *,
    described: dict[str, Any],
    steps: int | None,
    minutes: float,
    samples: int,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Trains and scores each of `configs` ({hint method: config}) in order into `out`, each
    record completed with `described` (config file, overrides, images); -> the summary of every
    record in `out` (what OUT/quality.json holds)."""
    check_fresh(out, list(configs))
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for i, (method, config) in enumerate(configs.items(), 1):
        say = _prefixed(echo, f"[{i}/{len(configs)}] {method}")
        record = {"method": method, **described, "argument": method}
        record |= _method_record(
            config, out, method, steps=steps, minutes=minutes, samples=samples, echo=say
        )
        path = out / f"{method}.json"
        path.write_text(json.dumps(record, indent=2, default=str) + "\n")
        summary = _write_summary(out)
        say(f"wrote {path}, {out / TABLE}, {out / SUMMARY}")
    return summary


def _prefixed(echo: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda line: echo(f"{prefix}: {line}")


def records(out: pathlib.Path) -> list[dict[str, Any]]:
    """Every OUT/<hint method>.json, in the order of `data.hints`' methods."""
    paths = [out / f"{method}.json" for method in HINT_CHANNELS]
    return [json.loads(p.read_text()) for p in paths if p.is_file()]


def row(record: dict[str, Any]) -> dict[str, Any]:
    """One method's line of the table, from its record."""
    report = record["eval"]
    model, best = report["metrics"][PAIRED], report["best_baseline"]
    return {
        "method": record["method"],
        "psnr": model["psnr"],
        "ssim": model["ssim"],
        "hint_error": model.get(HINT_ERROR),
        "best_baseline": best,
        "best_baseline_psnr": report["baselines"][best]["psnr"],
        "gain_db": model[GAIN],
        "baselines_psnr": {name: v["psnr"] for name, v in report["baselines"].items()},
        "target_hint_error": report.get(TARGET, {}).get(HINT_ERROR),
        "num_steps": record["num_steps"],
        "train_minutes": record["train_minutes"],
    }


def _write_summary(out: pathlib.Path) -> dict[str, Any]:
    """Rewrites OUT/quality.md and OUT/quality.json from every record in `out`; -> the JSON."""
    found = records(out)
    rows = [row(r) for r in found]
    summary = {
        "rows": rows,
        "runs": {
            r["method"]: {
                k: r.get(k)
                for k in ("config", "argument", "overrides", "images", "date", "machine")
            }
            | {"record": str(out / f"{r['method']}.json"), "sheet": r.get("sheet")}
            for r in found
        },
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / TABLE).write_text(_markdown(rows, found))
    return summary


def _number(value: float | None, digits: int, sign: str = "") -> str:
    return "-" if value is None else f"{value:{sign}.{digits}f}"


def _markdown(rows: list[dict[str, Any]], found: list[dict[str, Any]]) -> str:
    """The table (a row per method, a PSNR column per baseline any row has), its legend, and
    how each row was made."""
    scored = {name for r in rows for name in r["baselines_psnr"]}
    names = [name for name in baselines.DESCRIPTIONS if name in scored]  # in report order
    header = ["hints", "PSNR", "SSIM", "hint error", "best baseline", "gain (dB)"]
    header += [f"{name} PSNR" for name in names]
    header += ["target hint error", "steps", "training (min)"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        cells = [
            r["method"],
            _number(r["psnr"], 2),
            _number(r["ssim"], 3),
            _number(r["hint_error"], 1),
            f"{r['best_baseline']} ({r['best_baseline_psnr']:.2f})",
            _number(r["gain_db"], 2, "+"),
            *(_number(r["baselines_psnr"].get(name), 2) for name in names),
            _number(r["target_hint_error"], 1),
            f"{r['num_steps']:,}",
            f"{r['train_minutes']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", *legend(names), "", *_provenance(found)]) + "\n"


def legend(names: list[str]) -> list[str]:
    """What the columns mean, in the words of the evaluation modules."""
    return [
        "PSNR (dB) and SSIM: the model on the run's held-out validation split (python -m "
        "jaxcolor.evaluate); gain: its PSNR minus the best baseline's. Baselines "
        "(jaxcolor/evaluation/baselines.py), scored on the same images:",
        *(f"- `{name}`: {baselines.DESCRIPTIONS[name]}." for name in names),
        "",
        f"Hint error (0-255, jaxcolor/evaluation/hint_fidelity.py): {hint_fidelity.DEFINITION}; "
        "'-' where the hints carry no colours at known pixels. Target hint error: "
        f"{hint_fidelity.TARGET}. Training minutes include compilation and the evaluations "
        "during training.",
    ]


def _provenance(found: list[dict[str, Any]]) -> list[str]:
    """A line per method: what was trained on what, when and where."""
    lines = ["Runs:"]
    for r in found:
        spec = f"{r.get('config')}:{r.get('argument')}"
        overrides = " ".join(r.get("overrides") or []) or "none"
        m = r["machine"]
        lines.append(
            f"- {r['method']}: `{spec}` on {r.get('images')}, {r['num_steps']:,} steps of batch "
            f"{r['batch_size']} ({r['steps_per_s']:.2f} steps/s), {r['date']}, {m['cpus']} CPUs, "
            f"{m['jax_devices']} {m['jax_backend']} device(s), jaxcolor {r['jaxcolor']}; "
            f"overrides: {overrides}"
        )
    return lines
