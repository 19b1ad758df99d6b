"""A generator over a whole data split -> mean L1 / PSNR / SSIM (and FID), batched on device.

Used by `python -m jaxcolor.evaluate` on a checkpoint and by the training loop every
`eval_split_every` steps. Every image of the split counts exactly once: the last global batch is
padded with repeats that a mask leaves out of the sums. Models that take a reference image are
scored twice: with their own (paired) reference, and with another image's reference (the batch's
references rolled by one), the setting users meet at inference.
"""

from __future__ import annotations

import dataclasses
import json
import math
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
from jax.sharding import Mesh

from jaxcolor import checkpoint, parallel, summary
from jaxcolor.core.errors import ConfigError
from jaxcolor.data import pipeline
from jaxcolor.evaluation import fid as fid_lib
from jaxcolor.evaluation import metrics
from jaxcolor.nets import inputs
from jaxcolor.training import sketcher
from jaxcolor.training import state as state_lib

SPLITS = ("val", "train")
PAIRED, DIFFERENT = "paired", "different_reference"


@dataclasses.dataclass(frozen=True)
class Scores:
    """Mean metrics per column (`paired`, and `different_reference` for reference models)."""

    num_images: int
    columns: dict[str, dict[str, float]]
    seconds: float

    def flat(self) -> dict[str, float]:
        """{"psnr": ..., "different_reference/psnr": ...}: the paired column unprefixed."""
        out: dict[str, float] = {}
        for column, values in self.columns.items():
            prefix = "" if column == PAIRED else f"{column}/"
            out |= {f"{prefix}{k}": v for k, v in values.items()}
        return out


def _score_fn(config, nets: state_lib.Networks, with_images: bool) -> Callable:
    """(state, batch, mask) -> ({column: {metric: sum over the masked images}}, images), where
    images = {column: prediction, "real": target} when FID is computed, else {}."""

    def score(state, batch, mask):
        batches = {PAIRED: batch}
        if "reference" in batch:  # a reference model: also score another image's reference
            batches[DIFFERENT] = batch | {"reference": jnp.roll(batch["reference"], 1, axis=0)}
        sums, images = {}, {}
        for column, b in batches.items():
            pred, target = inputs.predict(state, b, nets=nets, config=config)
            per_image = metrics.per_image(pred, target)
            sums[column] = {k: jnp.where(mask, v, 0.0).sum() for k, v in per_image.items()}
            if with_images:
                images[column] = pred
        if with_images:
            images["real"] = target
        return sums, images

    return score


class SplitEvaluator:
    """Scores a train state's generator on every image of `source` (up to `max_images`)."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        nets: state_lib.Networks,
        mesh: Mesh,
        source,
        *,
        batch_size: int,
        max_images: int = 0,
        fid: Any | None = None,
    ):
        parallel.check_batch_size(batch_size, mesh, name="evaluation batch size")
        self.num_images = len(source) if max_images <= 0 else min(max_images, len(source))
        self._config, self._source, self._batch = config, source, batch_size
        self._mesh, self._fid = mesh, fid
        rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
        self._score = state_lib.jit_with_frozen(
            lambda n, *args: _score_fn(config, n, fid is not None)(*args),
            nets,
            mesh,
            in_shardings=(rep, data, data),
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
        sums: dict[str, dict[str, float]] = {}
        sharding = parallel.batch_sharding(self._mesh)
        if self._fid is not None:
            self._fid.reset()
        local = self._batch // jax.process_count()
        first = jax.process_index() * local
        for host_batch, valid in self._batches():
            # Every process knows the whole mask; each ships its rows with its batch.
            rows = {"valid": valid[first : first + local]}
            batch = parallel.to_global(host_batch | rows, sharding)
            mask = batch.pop("valid")
            totals, images = self._score(state, batch, mask)
            if self._fid is not None:
                self._fid.update(images, valid)
            for column, values in jax.device_get(totals).items():
                acc = sums.setdefault(column, dict.fromkeys(values, 0.0))
                for k, v in values.items():
                    acc[k] += float(v)
        columns = {c: {k: v / self.num_images for k, v in s.items()} for c, s in sums.items()}
        if self._fid is not None:
            for column, value in self._fid.result().items():
                columns[column]["fid"] = value
        return Scores(self.num_images, columns, time.perf_counter() - began)

    def log(self, step: int, state: state_lib.TrainState, writer: summary.Writer) -> Scores:
        """Scores `state` during training: `eval_val/*` scalars and a console line."""
        scores = self(state)
        write(scores, step=step, split="val", writer=writer, json_path=None)
        summary.log_line(describe(scores, "val", step) + f" ({scores.seconds:.1f}s)")
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
        **(extra or {}),
    }
    if writer is not None:
        writer.scalars(step, scores.flat(), f"eval_{split}")
        writer.flush()
    if json_path is not None and jax.process_index() == 0:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def describe(scores: Scores, split: str, step: int) -> str:
    """One console line per column."""
    return "\n".join(
        f"{split} step {step} [{column}, {scores.num_images} images]: "
        + "  ".join(f"{k} {v:.4f}" for k, v in values.items())
        for column, values in scores.columns.items()
    )


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


def source_for(config: ml_collections.ConfigDict, split: str):
    """The run's `split` source ("val" or "train"), as training reads it."""
    _check_split(split)
    train, val = pipeline.make_sources(config)
    return val if split == "val" else train


def _abstract_state(config: ml_collections.ConfigDict, mesh: Mesh, **kwargs):
    """(the run's state shapes replicated over `mesh`, its networks); nothing is allocated."""
    return state_lib.abstract_train_state(
        config,
        in_channels=pipeline.condition_channels(config),
        sharding=parallel.replicated(mesh),
        **kwargs,
    )


def evaluate_checkpoint(
    workdir: str,
    *,
    split: str = "val",
    step: int | None = None,
    batch_size: int | None = None,
    max_images: int = 0,
    fid_weights: str | None = None,
    json_path: str | None = None,
) -> dict[str, Any]:
    """Scores WORKDIR's newest (or `step`'s) checkpoint on `split`; writes TensorBoard scalars
    `eval_<split>/...` into WORKDIR/tensorboard and a JSON report (default
    WORKDIR/eval/<split>-<step>.json). Returns the report."""
    _check_split(split)
    mesh = parallel.create_mesh(-1)
    restored = checkpoint.restore_read_only(
        workdir, lambda c: _abstract_state(c, mesh)[0], step
    )  # the run's own config, from the checkpoint's metadata
    config = ml_collections.ConfigDict(restored.config)
    batch_size = batch_size or config.eval_batch_size
    _, nets = _abstract_state(
        config, mesh, sketch_model=sketcher.load_sketcher(config, parallel.replicated(mesh))
    )
    source = source_for(config, split)

    fid = None
    if fid_weights:
        fid = ColumnFid(fid_weights, mesh)
    else:
        logging.warning(
            "FID skipped: no --fid-weights given (jaxcolor never downloads weights; pass "
            "pytorch-fid's pt_inception-2015-12-05-6726825d.pth to compute it)."
        )
    evaluator = SplitEvaluator(
        config, nets, mesh, source, batch_size=batch_size, max_images=max_images, fid=fid
    )
    scores = evaluator(restored.state)
    root = epath.Path(workdir)
    path = epath.Path(json_path) if json_path else root / "eval" / f"{split}-{restored.step}.json"
    writer = summary.Writer(root / "tensorboard")
    try:
        report = write(
            scores,
            step=restored.step,
            split=split,
            writer=writer,
            json_path=path,
            extra={
                "workdir": str(workdir),
                "fid": "computed" if fid else "skipped: no --fid-weights",
                "json": str(path),
            },
        )
    finally:
        writer.close()
    return report
