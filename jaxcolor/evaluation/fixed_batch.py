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
from jaxcolor.evaluation import hint_fidelity
from jaxcolor.evaluation import metrics as image_metrics
from jaxcolor.nets.inputs import Sketcher, model_inputs, predict, sketch_from_color, to_unit
from jaxcolor.training.state import Networks, TrainState, check_sketch_model, jit_with_frozen


def eval_step(state: TrainState, batch: dict[str, jax.Array], *, nets: Networks, config=None):
    """(prediction, batch means of l1 / psnr / ssim, and the pooled hint_error where the hints
    carry colours: NaN for a batch without a hinted pixel) of the generator in inference mode."""
    pred, target = predict(state, batch, nets=nets, config=config)
    metrics = image_metrics.batch_means(pred, target)
    hint_method = None if config is None else hint_fidelity.method(config)
    if hint_method:
        condition, _ = model_inputs(batch, config, sketch_model=nets.sketch_model)
        total, count = hint_fidelity.per_image(pred, condition, hint_method)
        metrics["hint_error"] = total.sum() / count.sum()
    return pred, metrics


def jit_eval_step(nets: Networks, mesh: Mesh, config: ml_collections.ConfigDict | None = None):
    """`eval_step` compiled with the prediction left batch-sharded and metrics replicated."""
    check_sketch_model(nets, config)
    rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    fn = lambda nets, state, batch: eval_step(state, batch, nets=nets, config=config)  # noqa: E731
    return jit_with_frozen(fn, nets, mesh, in_shardings=(rep, data), out_shardings=(data, rep))


class FixedBatchEvaluator:
    """Runs the generator on the fixed validation batch; writes val scalars and the image grid."""

    def __init__(self, config, nets: Networks, mesh: Mesh, val_host: dict[str, np.ndarray], writer):
        self._step_fn = jit_eval_step(nets, mesh, config)
        self._batch = parallel.to_global(val_host, parallel.batch_sharding(mesh))
        # The grid shows the global batch, so gather every process's rows once.
        self._host = {
            k: np.asarray(multihost_utils.process_allgather(v, tiled=True))
            for k, v in self._batch.items()
        }
        if nets.sketch_model is not None:  # data.sketch = "model:DIR": made on device, once
            sketch = jit_with_frozen(
                lambda n, b: _model_sketch(n.sketch_model, b),
                nets,
                mesh,
                in_shardings=(parallel.batch_sharding(mesh),),
                out_shardings=parallel.batch_sharding(mesh),
            )(self._batch)
            self._host["sketch"] = np.asarray(multihost_utils.process_allgather(sketch, tiled=True))
        self._task = config.task
        self._writer = writer

    def __call__(self, step: int, state: TrainState) -> dict[str, float]:
        pred, metrics = self._step_fn(state, self._batch)
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
