"""The train state (both networks' parameters, statistics and optimizer state) and how it is
built: `create_train_state` for training, `abstract_train_state` as a restore target."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh

from jaxcolor import parallel
from jaxcolor.data.sketch import is_model_sketch
from jaxcolor.nets import build, registry
from jaxcolor.nets.inputs import Sketcher
from jaxcolor.training import image_pool
from jaxcolor.training.vgg import FrozenVGG, uses_vgg

PyTree = Any


@flax.struct.dataclass
class NetState:
    """One network's trainable parameters, BatchNorm statistics and optimizer state."""

    params: PyTree
    stats: PyTree
    opt: PyTree


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes; pure pytrees, so it shards, donates and checkpoints."""

    step: jax.Array
    rng: jax.Array  # raw uint32 key data; each step folds its index in
    g: NetState
    d: NetState | None  # None when loss.gan_mode == "none"
    pool: image_pool.ImagePool | None = None  # D's past fakes; None when model.image_pool.size=0
    # The exponential moving average of g.params (train.ema_decay > 0), else None.
    ema: PyTree | None = None

    def inference_generator(self) -> NetState:
        """The generator as evaluation and export use it: `g` with, when train.ema_decay > 0,
        the moving average of its parameters (and its own running BatchNorm statistics)."""
        return self.g if self.ema is None else self.g.replace(params=self.ema)


@dataclasses.dataclass(frozen=True)
class Networks:
    """The static halves of the networks (graph definitions) and their optimizers."""

    g_graph: nnx.GraphDef
    d_graph: nnx.GraphDef | None
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation | None
    schedule: optax.Schedule
    takes_reference: bool = False  # the generator is called with reference= (batch["reference"])
    # data.sketch = "model:DIR": the frozen sketch extractor the steps run on the colour batch.
    sketch_model: Sketcher | None = None
    # loss.perceptual_weight / style_weight: the frozen VGG-19 (`vgg.load_vgg`) the steps run.
    vgg: FrozenVGG | None = None


def frozen_weights(nets: Networks) -> dict[str, PyTree]:
    """The weights of the frozen networks (sketch extractor, VGG-19) as one pytree."""
    weights = {}
    if nets.sketch_model is not None:
        weights["sketch"] = (nets.sketch_model.params, nets.sketch_model.stats)
    if nets.vgg is not None:
        weights["vgg"] = nets.vgg.params
    return weights


def with_frozen_weights(nets: Networks, weights: dict[str, PyTree]) -> Networks:
    """`nets` with its frozen networks' weights replaced by `weights` (`frozen_weights`)."""
    changes = {}
    if "sketch" in weights:
        params, stats = weights["sketch"]
        changes["sketch_model"] = dataclasses.replace(nets.sketch_model, params=params, stats=stats)
    if "vgg" in weights:
        changes["vgg"] = dataclasses.replace(nets.vgg, params=weights["vgg"])
    return dataclasses.replace(nets, **changes)


class Bound:
    """A jitted function, or its Lowered / Compiled form, with its first argument bound.

    `jit_with_frozen` returns one; `.lower(*args)` and `.compile()` keep the argument bound (as
    shapes when lowering, so a compile-only target's mesh needs no arrays), and other attributes
    (`memory_analysis`, `cost_analysis`, `as_text`, ...) are the wrapped object's.
    """

    def __init__(self, fn: Any, first: PyTree):
        self._fn, self._first = fn, first

    def __call__(self, *args):
        return self._fn(self._first, *args)

    def lower(self, *args) -> Bound:
        shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), self._first)
        return Bound(self._fn.lower(shapes, *args), self._first)

    def compile(self, *args, **kwargs) -> Bound:
        return Bound(self._fn.compile(*args, **kwargs), self._first)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fn, name)


def jit_with_frozen(
    fn: Any,
    nets: Networks,
    mesh: Mesh,
    *,
    in_shardings: tuple,
    out_shardings: Any,
    donate_argnums: tuple[int, ...] = (),
) -> Bound:
    """`jax.jit` of `fn(nets, *args)` called as `(*args)`, with the frozen networks' weights
    (`frozen_weights`) passed as a replicated argument.

    Closed over, jit would embed them in the program as constants: VGG-19's ~80 MB in every
    executable, its compile and its persistent-cache entry.
    """

    def call(weights, *args):
        return fn(with_frozen_weights(nets, weights), *args)

    jitted = jax.jit(
        call,
        in_shardings=(parallel.replicated(mesh), *in_shardings),
        out_shardings=out_shardings,
        donate_argnums=tuple(i + 1 for i in donate_argnums),
    )
    return Bound(jitted, frozen_weights(nets))


def uses_ema(config: ml_collections.ConfigDict) -> bool:
    """train.ema_decay > 0: the state keeps a moving average of the generator's parameters."""
    return config.train.ema_decay > 0


def moving_average_start(params: PyTree) -> PyTree:
    """The EMA's first value: a copy of `params` (its own buffers: the step donates both)."""
    return jax.tree.map(jnp.copy, params)


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
    """Constant lr, then (optionally) linear decay to 0 over the last `decay_steps` steps."""
    lr, decay = config.optimizer.learning_rate, config.optimizer.decay_steps
    if decay <= 0:
        return optax.constant_schedule(lr)
    hold = max(config.num_steps - decay, 0)
    return optax.join_schedules(
        [optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, decay)], [hold]
    )


def _split(model: nnx.Module) -> tuple[nnx.GraphDef, PyTree, PyTree]:
    graph, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    return graph, nnx.to_pure_dict(params), nnx.to_pure_dict(stats)


def create_train_state(
    config: ml_collections.ConfigDict,
    *,
    in_channels: int,
    mesh: Mesh,
    sketch_model: Sketcher | None = None,
    vgg: FrozenVGG | None = None,
    platform: str | None = None,
) -> tuple[TrainState, Networks]:
    """Builds both networks and their optimizers; the state is replicated over `mesh`.

    Platform-dependent choices (upsample_impl="auto") follow `platform`, by default that of
    the mesh's devices.

    `sketch_model` is the frozen extractor of data.sketch = "model:DIR"
    (`sketcher.load_sketcher`), and `vgg` the frozen VGG-19 of the perceptual and style losses
    (`vgg.load_vgg`), both needed only where the steps run: they are not part of the state.
    """
    key = jax.random.key(config.seed)
    g_key, d_key, step_key = jax.random.split(key, 3)
    schedule = learning_rate_schedule(config)
    opt = config.optimizer

    def adam() -> optax.GradientTransformation:
        return optax.adam(schedule, b1=opt.b1, b2=opt.b2)

    generator = build.build_generator(
        config.model.generator,
        in_channels=in_channels,
        dtype=config.compute_dtype,
        rngs=nnx.Rngs(g_key),
        platform=platform or parallel.platform(mesh),
    )
    g_graph, g_params, g_stats = _split(generator)
    g_tx = adam()
    g = NetState(g_params, g_stats, g_tx.init(g_params))

    d_graph = d_tx = d = None
    if config.loss.gan_mode != "none":
        out_channels = config.model.generator.out_channels
        discriminator = build.build_discriminator(
            config.model.discriminator,
            in_channels=in_channels + out_channels,
            dtype=config.compute_dtype,
            rngs=nnx.Rngs(d_key),
        )
        d_graph, d_params, d_stats = _split(discriminator)
        d_tx = adam()
        d = NetState(d_params, d_stats, d_tx.init(d_params))

    pool = image_pool.create(config, in_channels + config.model.generator.out_channels)
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        rng=jax.random.key_data(step_key),
        g=g,
        d=d,
        pool=pool,
        ema=moving_average_start(g_params) if uses_ema(config) else None,
    )
    state = jax.device_put(state, parallel.replicated(mesh))
    reference = registry.generator(config.model.generator).takes_reference
    networks = Networks(
        g_graph,
        d_graph,
        g_tx,
        d_tx,
        schedule,
        takes_reference=reference,
        sketch_model=sketch_model,
        vgg=vgg,
    )
    return state, networks


def abstract_train_state(
    config: ml_collections.ConfigDict,
    *,
    in_channels: int,
    sharding: jax.sharding.Sharding,
    sketch_model: Sketcher | None = None,
    vgg: FrozenVGG | None = None,
) -> tuple[TrainState, Networks]:
    """`create_train_state` without computing the state: its shapes and dtypes placed with
    `sharding` (a restore target, or a compile-only TPU mesh's), and the networks, built for the
    platform of `sharding`'s devices. Nothing is allocated."""
    mesh = parallel.create_mesh(1)
    created = {}
    target = next(iter(sharding.device_set)).platform

    def shapes() -> TrainState:
        state, created["nets"] = create_train_state(
            config,
            in_channels=in_channels,
            mesh=mesh,
            sketch_model=sketch_model,
            vgg=vgg,
            platform=target,
        )
        return state

    return parallel.placed_shapes(jax.eval_shape(shapes), sharding), created["nets"]


def check_sketch_model(nets: Networks, config: ml_collections.ConfigDict | None) -> None:
    """data.sketch = "model:DIR" steps run the extractor: `nets` must carry it."""
    if config is not None and is_model_sketch(config.data.sketch) and nets.sketch_model is None:
        raise ValueError(
            f"data.sketch={config.data.sketch!r}: pass sketch_model=sketcher.load_sketcher(config, "
            "sharding) to create_train_state before compiling a step."
        )
    if config is not None and uses_vgg(config) and nets.vgg is None:
        raise ValueError(
            "loss.perceptual_weight / loss.style_weight: pass vgg=vgg.load_vgg(config, sharding) "
            "to create_train_state before compiling a step."
        )
