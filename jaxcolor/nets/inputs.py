"""The batch -> network inputs contract that training, evaluation and benchmarks share.

A host batch holds uint8 arrays ("color", "sketch", optionally "hints" and "reference"); a
generator reads condition = sketch ++ hints in [-1, 1] (or the colour image for task="sketch"),
plus reference= for reference-guided families. `predict` runs a generator in inference mode.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx


@dataclasses.dataclass(frozen=True)
class Sketcher:
    """A frozen sketch extractor: graph definition plus its weights (replicated device arrays)."""

    graph: nnx.GraphDef
    params: Any
    stats: Any


class Nets(Protocol):
    """What these functions read of the training `Networks`."""

    g_graph: nnx.GraphDef
    takes_reference: bool
    sketch_model: Sketcher | None


def to_unit(x: jax.Array) -> jax.Array:
    """uint8 -> float32 in [-1, 1]."""
    return x.astype(jnp.float32) / 127.5 - 1.0


def sketch_from_color(sketcher: Sketcher, color: jax.Array, *, quantize: bool = True) -> jax.Array:
    """(B, H, W, 3) colour in [-1, 1] -> (B, H, W, 1) sketch in [-1, 1], no gradient; with
    `quantize` rounded to the levels x / 127.5 - 1 of a uint8 sketch."""
    params, stats = jax.lax.stop_gradient((sketcher.params, sketcher.stats))
    model = nnx.merge(sketcher.graph, params, stats)
    sketch = jax.lax.stop_gradient(model(color, train=False))
    if not quantize:
        return sketch
    return jnp.round((sketch + 1.0) * 127.5) / 127.5 - 1.0


def model_inputs(
    batch: dict[str, jax.Array],
    config: ml_collections.ConfigDict | None = None,
    *,
    sketch_model: Sketcher | None = None,
) -> tuple[jax.Array, jax.Array]:
    """uint8 batch -> (condition, target), both float32 in [-1, 1].

    task "colorize" (the default, also without a config): condition = sketch ++ hints, target
    the colour image; the sketch comes from `sketch_model` (data.sketch = "model:DIR") when
    given, else from the batch. task "sketch": condition the colour image, target the sketch.
    """
    color = to_unit(batch["color"])
    if config is not None and config.task == "sketch":
        return color, to_unit(batch["sketch"])
    if sketch_model is not None:
        sketch = sketch_from_color(sketch_model, color)
    else:
        sketch = to_unit(batch["sketch"])
    if "hints" not in batch:  # data.hints = "none": the sketch alone
        return sketch, color
    return jnp.concatenate([sketch, to_unit(batch["hints"])], axis=-1), color


def generator_kwargs(nets: Nets, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Extra generator inputs: {"reference": RGB in [-1, 1]} for reference-guided models."""
    if not nets.takes_reference:
        return {}
    if "reference" not in batch:
        raise KeyError(
            "This generator is reference-guided and needs batch['reference'], a uint8 RGB image "
            "per example; build batches with jaxcolor.data.pipeline."
        )
    return {"reference": to_unit(batch["reference"])}


def apply(graph: nnx.GraphDef, params, stats, x, **call_kwargs):
    """Runs a network from its pure state; returns (output, updated BatchNorm statistics)."""
    model = nnx.merge(graph, params, stats)
    out = model(x, **call_kwargs)
    return out, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))


class Weights(Protocol):
    """A network's trainable parameters and BatchNorm statistics (pure pytrees)."""

    params: Any
    stats: Any


class GeneratorState(Protocol):
    """What `predict` reads of the training `TrainState`."""

    def inference_generator(self) -> Weights: ...


def predict(state: GeneratorState, batch: dict[str, jax.Array], *, nets: Nets, config=None):
    """(prediction, target) of the generator in inference mode (running BatchNorm statistics,
    no dropout), both float32 in [-1, 1], with `state.inference_generator()`'s weights (the
    moving average of the parameters when train.ema_decay > 0)."""
    condition, target = model_inputs(batch, config, sketch_model=nets.sketch_model)
    g = state.inference_generator()
    pred, _ = apply(
        nets.g_graph,
        g.params,
        g.stats,
        condition,
        train=False,
        **generator_kwargs(nets, batch),
    )
    return pred, target
