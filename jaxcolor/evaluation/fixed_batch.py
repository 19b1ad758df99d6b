"""The generator on one fixed validation batch: `val/*` scalars and the image grid.

The training loop runs it every `eval_every` steps (and at step 0 of a fresh run); the whole-split
scores are jaxcolor.evaluation.evaluator's.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from jaxcolor import parallel, summary
from jaxcolor.data import derive
from jaxcolor.evaluation import hint_fidelity
from jaxcolor.evaluation import metrics as image_metrics
from jaxcolor.nets.inputs import Sketcher, model_inputs, predict, sketch_from_color, to_unit
from jaxcolor.training import frozen as frozen_lib
from jaxcolor.training.state import Networks, TrainState


def eval_step(
    state: TrainState,
    frozen: frozen_lib.Frozen,
    batch: dict[str, jax.Array],
    *,
    nets: Networks,
    config=None,
):
    """(prediction, batch means of l1 / psnr / ssim, and the pooled hint_error where the hints
    carry colours: NaN for a batch without a hinted pixel) of the generator in inference mode;
    `frozen` holds the frozen networks the generator's inputs need (the sketch extractor)."""
    if config is not None:
        frozen_lib.check(frozen, config, inference=True)
        batch = derive.complete(batch, derive.eval_key(config), config)  # the device path
    sketch_model = frozen.get(frozen_lib.SKETCH)
    pred, target = predict(state, batch, nets=nets, config=config, sketch_model=sketch_model)
    metrics = image_metrics.batch_means(pred, target)
    hint_method = None if config is None else hint_fidelity.method(config)
    if hint_method:
        condition, _ = model_inputs(batch, config, sketch_model=sketch_model)
        total, count = hint_fidelity.per_image(pred, condition, hint_method)
        metrics["hint_error"] = total.sum() / count.sum()
    return pred, metrics


def jit_eval_step(nets: Networks, mesh: Mesh, config: ml_collections.ConfigDict | None = None):
    """`eval_step(state, frozen, batch)` compiled with the prediction left batch-sharded and
    metrics replicated."""
    rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    return jax.jit(
        lambda state, frozen, batch: eval_step(state, frozen, batch, nets=nets, config=config),
        in_shardings=(rep, rep, data),
        out_shardings=(data, rep),
    )


class FixedBatchEvaluator:
    """Runs the generator on the fixed validation batch; writes val scalars and the image grid."""

    def __init__(
        self,
        config,
        nets: Networks,
        frozen: frozen_lib.Frozen,
        mesh: Mesh,
        val_host: dict[str, np.ndarray],
        writer,
    ):
        self._step_fn = jit_eval_step(nets, mesh, config)
        self._frozen = frozen
        data = parallel.batch_sharding(mesh)
        self._batch = parallel.to_global(val_host, data)
        # The device path: the fixed batch's sketches and hints, made once (evaluation's key).
        self._batch = jax.jit(
            lambda b: derive.complete(b, derive.eval_key(config), config),
            in_shardings=(data,),
            out_shardings=data,
        )(self._batch)
        # The grid shows the global batch, so gather every process's rows once.
        self._host = {
            k: np.asarray(multihost_utils.process_allgather(v, tiled=True))
            for k, v in self._batch.items()
        }
        if frozen_lib.SKETCH in frozen:  # data.sketch = "model:DIR": made on device, once
            sketch = jax.jit(
                _model_sketch,
                in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
                out_shardings=parallel.batch_sharding(mesh),
            )(frozen[frozen_lib.SKETCH], self._batch)
            self._host["sketch"] = np.asarray(multihost_utils.process_allgather(sketch, tiled=True))
        self._task = config.task
        self._writer = writer

    def __call__(self, step: int, state: TrainState) -> dict[str, float]:
        pred, metrics = self._step_fn(state, self._frozen, self._batch)
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if math.isnan(metrics.get("hint_error", 0.0)):  # no hinted pixel in the batch
            del metrics["hint_error"]
        pred = np.asarray(multihost_utils.process_allgather(pred, tiled=True))
        self._writer.scalars(step, metrics, "val")
        if self._task == "sketch":
            grid = summary.image_grid([self._host["color"], pred, self._host["sketch"]])
            self._writer.image(step, "val/color_prediction_target", grid)
        else:
            # Reference models show their reference between the hints and the prediction.
            inputs = [self._host[k] for k in ("sketch", "hints", "reference") if k in self._host]
            grid = summary.image_grid([*inputs, pred, self._host["color"]])
            self._writer.image(step, "val/sketch_hints_prediction_target", grid)
        self._writer.flush()
        summary.log_line(
            f"eval step {step}: val l1 {metrics['l1']:.4f} psnr {metrics['psnr']:.2f} "
            f"ssim {metrics['ssim']:.4f}"
        )
        return metrics


def _model_sketch(sketch_model: Sketcher, batch) -> jax.Array:
    """The validation batch's sketches as the steps see them, as uint8 for the grid."""
    sketch = sketch_from_color(sketch_model, to_unit(batch["color"]))
    return jnp.round((sketch + 1.0) * 127.5).astype(jnp.uint8)
