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


class _SameGraph:
    """A frozen network's graph definition as the key of jit's cache holds it: compared by
    identity. Hashing a GraphDef walks the whole graph (about 1 ms for a U-Net), and jit hashes
    its arguments' static parts on every call."""

    __slots__ = ("graph",)

    def __init__(self, graph: nnx.GraphDef):
        self.graph = graph

    def __hash__(self) -> int:
        return id(self.graph)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SameGraph) and other.graph is self.graph


def frozen_network(cls: type) -> type:
    """Registers the dataclass `cls` (fields: `graph`, then its weight pytrees) as a pytree
    whose leaves are the weights and whose graph is static: a frozen network is then an
    argument of a jitted step (its weights arrays, or shapes when compiling ahead of time),
    never a constant of the program."""
    names = [f.name for f in dataclasses.fields(cls)]
    if names[0] != "graph":
        raise TypeError(f"{cls.__name__}: a frozen network's first field is its `graph`")
    weights = names[1:]

    def flatten_with_keys(x):
        children = [(jax.tree_util.GetAttrKey(n), getattr(x, n)) for n in weights]
        return children, _SameGraph(x.graph)

    def unflatten(aux: _SameGraph, children) -> Any:
        return cls(aux.graph, *children)

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten)
    return cls


@frozen_network
@dataclasses.dataclass(frozen=True)
class Sketcher:
    """A frozen sketch extractor: graph definition (static) plus its weights (replicated device
    arrays, or their shapes)."""

    graph: nnx.GraphDef
    params: Any
    stats: Any


class Nets(Protocol):
    """What these functions read of the training `Networks`."""

    g_graph: nnx.GraphDef
    takes_reference: bool


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


def predict(
    state: GeneratorState,
    batch: dict[str, jax.Array],
    *,
    nets: Nets,
    config=None,
    sketch_model: Sketcher | None = None,
):
    """(prediction, target) of the generator in inference mode (running BatchNorm statistics,
    no dropout), both float32 in [-1, 1], with `state.inference_generator()`'s weights (the
    moving average of the parameters when train.ema_decay > 0); the sketch from `sketch_model`
    (data.sketch = "model:DIR") when given, as `model_inputs`."""
    condition, target = model_inputs(batch, config, sketch_model=sketch_model)
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
