"""A generator over a whole data split -> mean L1 / PSNR / SSIM (and FID), batched on device,
beside trivial baselines on the same images, with hint fidelity and an optional sample sheet.

Used by `python -m jaxcolor.evaluate` on a checkpoint and by the training loop every
`eval_split_every` steps. Every image of the split counts exactly once: the last global batch is
padded with repeats that a mask leaves out of the sums. Models that take a reference image are
scored twice: with their own (paired) reference, and with another image's reference (the batch's
references rolled by one), the setting users meet at inference. The baselines
(`jaxcolor.evaluation.baselines`) are scored from the same batches, and each model column gets
`gain_db`: its PSNR minus the best baseline's. `hint_error` (`jaxcolor.evaluation.hint_fidelity`)
is pooled over every hinted pixel of the split, for the model, each baseline and the target.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import re
import time
from collections.abc import Callable
from typing import Any

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from jaxcolor import checkpoint, parallel, summary
from jaxcolor.core.errors import ConfigError, WorkdirError
from jaxcolor.data import derive, pipeline
from jaxcolor.evaluation import baselines as baselines_lib
from jaxcolor.evaluation import fid as fid_lib
from jaxcolor.evaluation import hint_fidelity, metrics, sample_sheet
from jaxcolor.nets import inputs
from jaxcolor.training import builder
from jaxcolor.training import frozen as frozen_lib
from jaxcolor.training import state as state_lib

SPLITS = ("val", "train")
PAIRED, DIFFERENT = "paired", "different_reference"
COLUMNS, BASELINES, TARGET = "columns", "baselines", "target"
HINT_ERROR, GAIN = "hint_error", "gain_db"
_HINT_SUM, _HINT_COUNT = "hint_abs", "hint_count"
SHEET_SAMPLES = 8  # rows of a sample sheet when --sheet comes without --samples


@dataclasses.dataclass(frozen=True)
class Scores:
    """Mean metrics per model column (`paired`, and `different_reference` for reference models;
    each with `gain_db` over the best baseline), per baseline, and the target's hint error."""

    num_images: int
    columns: dict[str, dict[str, float]]
    seconds: float
    baselines: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    target: dict[str, float] = dataclasses.field(default_factory=dict)
    samples: dict[str, np.ndarray] | None = None  # the first images' inputs and outputs (uint8)

    @classmethod
    def from_sums(
        cls,
        sums: dict[str, Any],
        num_images: int,
        *,
        seconds: float = 0.0,
        samples: dict[str, np.ndarray] | None = None,
        fid: dict[str, float] | None = None,
    ) -> Scores:
        """`batch_sums` added over a set (as Python numbers) -> means, the pooled hint errors,
        FID per column, and each column's gain over the best baseline."""
        columns = {c: _means(v, num_images) for c, v in sums[COLUMNS].items()}
        for column, value in (fid or {}).items():
            columns[column]["fid"] = value
        scores = cls(
            num_images,
            columns,
            seconds,
            baselines={b: _means(v, num_images) for b, v in sums[BASELINES].items()},
            target=_means(sums.get(TARGET, {}), num_images),
            samples=samples,
        )
        best = scores.best_baseline
        if best is not None:
            for values in columns.values():
                values[GAIN] = values["psnr"] - scores.baselines[best]["psnr"]
        return scores

    @property
    def best_baseline(self) -> str | None:
        """The baseline with the highest PSNR (None without baselines)."""
        return max(self.baselines, key=lambda b: self.baselines[b]["psnr"], default=None)

    def flat(self) -> dict[str, float]:
        """{"psnr": ..., "different_reference/psnr": ..., "baselines/grey/psnr": ...,
        "target/hint_error": ...}: the paired column unprefixed; TensorBoard tags."""
        out: dict[str, float] = {}
        for column, values in self.columns.items():
            prefix = "" if column == PAIRED else f"{column}/"
            out |= {f"{prefix}{k}": v for k, v in values.items()}
        for name, values in self.baselines.items():
            out |= {f"{BASELINES}/{_tag(name)}/{k}": v for k, v in values.items()}
        return out | {f"{TARGET}/{k}": v for k, v in self.target.items()}


def _tag(name: str) -> str:
    """A TensorBoard-safe tag part ("sketch+hints" -> "sketch_hints"), as tensorboardX would
    make it, but without its warning."""
    return re.sub(r"[^-/\w.]", "_", name)


def batch_sums(
    predictions: dict[str, jax.Array],
    condition: jax.Array,
    target: jax.Array,
    mask: jax.Array,
    config: ml_collections.ConfigDict,
) -> dict[str, dict[str, dict[str, jax.Array]]]:
    """One batch's sums over its real images (`mask`), for `Scores.from_sums`:
    {"columns": {column: sums}, "baselines": {baseline: sums}, "target": sums (hint methods
    only)}. Sums are of the per-image l1, psnr and ssim and, with colour hints, of the hint error
    and of 3 x the hinted pixels (pooled later). `predictions`: {column: output in [-1, 1]};
    `condition` and `target` as `inputs.model_inputs` makes them."""
    hint_method = hint_fidelity.method(config)

    def sums(values: dict[str, jax.Array]) -> dict[str, jax.Array]:
        return {k: jnp.where(mask, v, 0).sum() for k, v in values.items()}

    def scored(outputs: dict[str, jax.Array]) -> dict[str, dict[str, jax.Array]]:
        out = {}
        for name, output in outputs.items():
            values = metrics.per_image(output, target)
            if hint_method:
                values |= _hint_sums(output, condition, hint_method)
            out[name] = sums(values)
        return out

    totals = {
        COLUMNS: scored(predictions),
        BASELINES: scored(baselines_lib.images(condition, target, config)),
    }
    if hint_method:
        totals[TARGET] = sums(_hint_sums(target, condition, hint_method))
    return totals


def _score_fn(config, nets: state_lib.Networks, *, fid: bool, samples: bool) -> Callable:
    """(state, frozen, batch, mask) -> (`batch_sums`, images), where images holds
    {"fid": {column: prediction, "real": target}} with `fid` and {"samples": uint8 inputs and
    outputs, per-image PSNR} with `samples`."""

    def score(state, frozen, batch, mask):
        frozen_lib.check(frozen, config, inference=True)
        batch = derive.complete(batch, derive.eval_key(config), config)  # the device path
        sketch_model = frozen.get(frozen_lib.SKETCH)
        condition, target = inputs.model_inputs(batch, config, sketch_model=sketch_model)

        def predict(b):
            return inputs.predict(state, b, nets=nets, config=config, sketch_model=sketch_model)[0]

        predictions = {PAIRED: predict(batch)}
        if "reference" in batch:  # a reference model: also score another image's reference
            predictions[DIFFERENT] = predict(
                batch | {"reference": jnp.roll(batch["reference"], 1, axis=0)}
            )
        images = {}
        if fid:
            images["fid"] = predictions | {"real": target}
        if samples:
            images["samples"] = _samples(config, batch, condition, target, predictions[PAIRED])
        return batch_sums(predictions, condition, target, mask, config), images

    return score


def _hint_sums(output, condition, hint_method: str) -> dict[str, jax.Array]:
    total, count = hint_fidelity.per_image(output, condition, hint_method)
    return {_HINT_SUM: total, _HINT_COUNT: count}


def _samples(config, batch, condition, target, prediction) -> dict[str, jax.Array]:
    """What the sample sheet shows, as uint8 (the model's inputs exactly), and each PSNR."""
    u8 = lambda x: hint_fidelity.levels(x).astype(jnp.uint8)  # noqa: E731
    if config.task == "sketch":
        out = {"color": u8(condition)}
    else:
        out = {"sketch": u8(condition[..., :1])}
        if condition.shape[-1] > 1:
            out["hints"] = u8(condition[..., 1:])
    if "reference" in batch:
        out["reference"] = batch["reference"]
    return out | {
        "output": u8(prediction),
        "target": u8(target),
        "psnr": metrics.per_image(prediction, target)["psnr"],
    }


def _means(sums: dict[str, float], num_images: int) -> dict[str, float]:
    """Per-image sums -> means; hint sums -> the pooled hint error (absent without hints)."""
    out = {k: sums[k] / num_images for k in metrics.NAMES if k in sums}
    if sums.get(_HINT_COUNT):
        out[HINT_ERROR] = sums[_HINT_SUM] / sums[_HINT_COUNT]
    return out


class _SampleRows:
    """The first `n` images' samples, gathered from every process's rows."""

    def __init__(self, n: int):
        self._n, self._parts = n, []

    def _wanted(self) -> int:
        return self._n - sum(len(p["output"]) for p in self._parts)

    def add(self, samples: dict[str, jax.Array], valid: np.ndarray) -> None:
        take = min(self._wanted(), int(valid.sum()))  # padding rows come last
        if take > 0:
            rows = {k: multihost_utils.process_allgather(v, tiled=True) for k, v in samples.items()}
            self._parts.append({k: np.asarray(v)[:take] for k, v in rows.items()})

    def result(self) -> dict[str, np.ndarray] | None:
        if not self._parts:
            return None
        return {k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}


class SplitEvaluator:
    """Scores a train state's generator on every image of `source` (up to `max_images`), beside
    the baselines; keeps the first `samples` images' inputs and outputs for a sample sheet."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        nets: state_lib.Networks,
        frozen: frozen_lib.Frozen,
        mesh: Mesh,
        source,
        *,
        batch_size: int,
        max_images: int = 0,
        fid: Any | None = None,
        samples: int = 0,
    ):
        parallel.check_batch_size(batch_size, mesh, name="evaluation batch size")
        self.num_images = len(source) if max_images <= 0 else min(max_images, len(source))
        self._config, self._source, self._batch = config, source, batch_size
        self._mesh, self._fid, self._samples = mesh, fid, samples
        self._frozen = frozen  # the networks the generator's inputs need (a sketch extractor)
        rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
        flags = {"fid": fid is not None, "samples": samples > 0}
        self._score = jax.jit(
            _score_fn(config, nets, **flags),
            in_shardings=(rep, rep, data, data),
            out_shardings=(rep, data),
        )

    def _batches(self):
        """This process's rows of each global batch, and the global batch's real-image mask."""
        n, b = self.num_images, self._batch
        local = b // jax.process_count()
        rows = pipeline.ProcessRows(
            pipeline.eval_examples(self._config, self._source),
            b,
            jax.process_index(),
            jax.process_count(),
        )
        rows = rows[: math.ceil(n / b) * local].to_iter_dataset(grain.ReadOptions(num_threads=8))
        for s, batch in enumerate(rows.batch(local, drop_remainder=True)):
            pipeline.pop_skipped(batch)
            yield batch, s * b + np.arange(b) < n  # padding rows past the split's end

    def __call__(self, state: state_lib.TrainState) -> Scores:
        began = time.perf_counter()
        sums = None
        sharding = parallel.batch_sharding(self._mesh)
        if self._fid is not None:
            self._fid.reset()
        samples = _SampleRows(self._samples)
        local = self._batch // jax.process_count()
        first = jax.process_index() * local
        for host_batch, valid in self._batches():
            # Every process knows the whole mask; each ships its rows with its batch.
            rows = {"valid": valid[first : first + local]}
            batch = parallel.to_global(host_batch | rows, sharding)
            mask = batch.pop("valid")
            totals, images = self._score(state, self._frozen, batch, mask)
            if self._fid is not None:
                self._fid.update(images["fid"], valid)
            if self._samples:
                samples.add(images["samples"], valid)
            totals = jax.tree.map(lambda v: v.item(), jax.device_get(totals))
            sums = totals if sums is None else jax.tree.map(operator.add, sums, totals)
        return Scores.from_sums(
            sums,
            self.num_images,
            seconds=time.perf_counter() - began,
            samples=samples.result(),
            fid=None if self._fid is None else self._fid.result(),
        )

    def log(self, step: int, state: state_lib.TrainState, writer: summary.Writer) -> Scores:
        """Scores `state` during training: `eval_val/*` scalars and console lines."""
        scores = self(state)
        report = write(scores, step=step, split="val", writer=writer, json_path=None)
        summary.log_line(describe(report) + f" ({scores.seconds:.1f}s)")
        return scores


def write(
    scores: Scores,
    *,
    step: int,
    split: str,
    writer: summary.Writer | None,
    json_path: epath.Path | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes `eval_<split>/...` scalars (process 0) and the JSON report; returns the report."""
    report = {
        "step": step,
        "split": split,
        "num_images": scores.num_images,
        "seconds": round(scores.seconds, 2),
        "metrics": scores.columns,
        "baselines": scores.baselines,
        "best_baseline": scores.best_baseline,
        **({TARGET: scores.target} if scores.target else {}),
        **(extra or {}),
    }
    if writer is not None:
        writer.scalars(step, scores.flat(), f"eval_{split}")
        writer.flush()
    if json_path is not None and jax.process_index() == 0:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def describe(report: dict[str, Any]) -> str:
    """Console lines of a report: one per model column (with its gain over the best baseline),
    one per baseline, and the target's hint error."""
    where = f"{report['split']} step {report['step']}"
    shown = lambda values: "  ".join(f"{k} {v:.4f}" for k, v in values.items())  # noqa: E731
    lines = []
    for column, values in report["metrics"].items():
        line = f"{where} [{column}, {report['num_images']} images]: {shown(values)}"
        if GAIN in values:
            line += f" (over {report['best_baseline']})"
        lines.append(line)
    for name, values in report["baselines"].items():
        lines.append(f"{where} [baseline {name}]: {shown(values)}")
    if report.get(TARGET):
        lines.append(f"{where} [target: the true colours]: {shown(report[TARGET])}")
    return "\n".join(lines)


class ColumnFid:
    """FID per evaluation column against one set of real-image statistics."""

    def __init__(self, weights: str, mesh: Mesh):
        from jaxcolor.evaluation.inception import load_fid_inception

        self._model, self._mesh = load_fid_inception(weights), mesh
        self._columns: dict[str, fid_lib.FidAccumulator] = {}

    def reset(self) -> None:
        for acc in self._columns.values():
            acc.reset()

    def update(self, images: dict[str, jax.Array], mask: np.ndarray) -> None:
        """images: {column: generated, "real": target}, (B, H, W, C) in [-1, 1]."""
        for column, fake in images.items():
            if column == "real":
                continue
            if column not in self._columns:
                self._columns[column] = fid_lib.FidAccumulator(self._model, mesh=self._mesh)
            self._columns[column].update_fake(_rgb(fake), mask)
        self._columns[PAIRED].update_real(_rgb(images["real"]), mask)

    def result(self) -> dict[str, float]:
        real, _ = self._columns[PAIRED].statistics()
        out = {PAIRED: self._columns[PAIRED].result()}
        for column, acc in self._columns.items():
            if column != PAIRED:
                fake = acc.statistics()[1]
                out[column] = fid_lib.frechet_distance(
                    real.mean, real.covariance, fake.mean, fake.covariance
                )
        return out


def _rgb(x: jax.Array) -> jax.Array:
    """Inception reads RGB: a 1-channel output (a sketch) is repeated."""
    return jnp.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {SPLITS}, got {split!r}")


def _source_for(config: ml_collections.ConfigDict, split: str):
    """The run's `split` source ("val" or "train"), as training reads it."""
    _check_split(split)
    train, val = pipeline.make_sources(config)
    return val if split == "val" else train


def _check_set(
    split: str | None, source: str | None, data_dir: str | None, source_split: str | None
) -> None:
    """Checks the choice of the scored set before anything is restored."""
    if split is not None:
        _check_split(split)
    if source is None:
        for flag, value in (("--data_dir", data_dir), ("--source_split", source_split)):
            if value:
                raise ConfigError(f"{flag} applies to --source tfds:NAME only; add --source.")
        return
    if split is not None:
        raise ConfigError(
            "--split and --source exclude each other: --split scores one of the run's own "
            "splits, --source another set; give one of them."
        )
    if source.startswith(pipeline.FOLDER):
        folder = source[len(pipeline.FOLDER) :]
        if not folder or not epath.Path(folder).is_dir():
            raise ConfigError(
                f"--source {source}: {folder!r} is not a folder; pass --source folder:DIR with "
                "an existing folder of images (read recursively)."
            )
        if data_dir or source_split:
            raise ConfigError(
                f"--source {source}: --data_dir and --source_split apply to tfds: sources; a "
                "folder is scored whole. Drop them."
            )
    elif source.startswith(pipeline.TFDS):
        if data_dir and not epath.Path(data_dir).is_dir():
            raise ConfigError(
                f"--data_dir {data_dir!r} is not a folder; pass the --out folder of python -m "
                "jaxcolor.prepare (or leave it out for TFDS's default)."
            )
    else:
        raise ConfigError(
            f"--source {source!r}: use --source folder:DIR (every image under DIR) or "
            "--source tfds:NAME (with --data_dir and optionally --source_split)."
        )


def _scored_set(
    config: ml_collections.ConfigDict,
    split: str | None,
    source: str | None,
    data_dir: str | None,
    source_split: str | None,
) -> tuple[str, Any, dict[str, Any]]:
    """(label for TensorBoard `eval_<label>/` and the default file names, the source, what the
    report records of it): one of the run's splits, or another set read as its validation
    images are."""
    if source is None:
        split = split or "val"
        return split, _source_for(config, split), {"spec": config.data.source, "split": split}
    try:
        held_out = pipeline.held_out_source(config, source, data_dir=data_dir, split=source_split)
    except (OSError, ValueError, ImportError) as e:
        raise ConfigError(f"--source {source}: {e}") from e
    if source.startswith(pipeline.FOLDER):
        chosen = None  # a folder is scored whole
        label = "folder_" + epath.Path(source[len(pipeline.FOLDER) :]).name
    else:
        chosen = held_out.source.split  # the TfdsSource's split: the one asked for, or the default
        label = f"tfds_{source[len(pipeline.TFDS) :]}_{chosen}"
    described = {"spec": source, "split": chosen, "data_dir": data_dir or None}
    return re.sub(r"[^\w.-]+", "_", label), held_out, described


def _restore(workdir: str, mesh: Mesh, step: int | None) -> tuple[checkpoint.Restored, builder.Run]:
    """WORKDIR's newest (or `step`'s) checkpoint restored onto `mesh`, and its run: built once,
    from the run's own config (the checkpoint's metadata) taken as it was trained, with the
    frozen networks the generator's inputs need."""
    built: list[builder.Run] = []

    def target(config: ml_collections.ConfigDict) -> state_lib.TrainState:
        built.append(builder.build(config, mesh, frozen=builder.INFERENCE, check=False))
        return built[0].state

    restored = checkpoint.restore_read_only(workdir, target, step)
    return restored, built[0]


def evaluate_checkpoint(
    workdir: str,
    *,
    split: str | None = None,
    step: int | None = None,
    batch_size: int | None = None,
    max_images: int = 0,
    fid_weights: str | None = None,
    json_path: str | None = None,
    source: str | None = None,
    data_dir: str | None = None,
    source_split: str | None = None,
    samples: int = 0,
    sheet_path: str | None = None,
) -> dict[str, Any]:
    """Scores WORKDIR's newest (or `step`'s) checkpoint on `split` (default "val") or on another
    set (`source`: "folder:DIR" or "tfds:NAME" under `data_dir`, split `source_split`); writes
    TensorBoard scalars `eval_<label>/...` into WORKDIR/tensorboard, a JSON report (default
    WORKDIR/eval/<label>-<step>.json) and, with `samples` or `sheet_path`, a sample sheet of the
    first `samples` images (default WORKDIR/eval/<label>-<step>.png). Returns the report."""
    _check_set(split, source, data_dir, source_split)
    if samples < 0:
        raise ConfigError(f"--samples {samples}: give a number of images >= 1.")
    samples = samples or (SHEET_SAMPLES if sheet_path else 0)
    mesh = parallel.create_mesh(-1)
    restored, run = _restore(workdir, mesh, step)
    config = run.config
    batch_size = batch_size or config.eval_batch_size
    label, scored, described = _scored_set(config, split, source, data_dir, source_split)

    fid = None
    if fid_weights:
        fid = ColumnFid(fid_weights, mesh)
    else:
        logging.warning(
            "FID skipped: no --fid_weights given (jaxcolor never downloads weights; pass "
            "pytorch-fid's pt_inception-2015-12-05-6726825d.pth to compute it)."
        )
    evaluator = SplitEvaluator(
        config,
        run.nets,
        run.frozen,
        mesh,
        scored,
        batch_size=batch_size,
        max_images=max_images,
        fid=fid,
        samples=samples,
    )
    scores = evaluator(restored.state)
    root = epath.Path(workdir)
    stem = f"{label}-{restored.step}"
    path = epath.Path(json_path) if json_path else root / "eval" / f"{stem}.json"
    extra = {
        "workdir": str(workdir),
        "source": described,
        "fid": "computed" if fid else "skipped: no --fid_weights",
        "json": str(path),
    }
    sheet = epath.Path(sheet_path) if sheet_path else root / "eval" / f"{stem}.png"
    if scores.samples is not None:
        extra["sheet"] = str(sheet)
    writer = summary.Writer(root / "tensorboard")
    try:
        report = write(
            scores, step=restored.step, split=label, writer=writer, json_path=path, extra=extra
        )
    finally:
        writer.close()
    if scores.samples is not None and jax.process_index() == 0:
        _write_sheet(sheet, scores.samples, config)  # after the report: a bad path loses nothing
    return report


def _write_sheet(path: epath.Path, samples: dict[str, np.ndarray], config) -> None:
    """The sample sheet of the evaluated images, each row labelled with its index and PSNR."""
    columns = sample_sheet.sheet_columns(samples, config.data.hints)
    labels = [(f"#{i}", f"{p:.1f} dB") for i, p in enumerate(samples["psnr"])]
    try:
        sample_sheet.write_png(path, sample_sheet.sample_sheet(columns, labels))
    except OSError as e:
        raise WorkdirError(
            f"--sheet {path}: cannot write it ({e}); pass a writable .png path."
        ) from e
