"""The train state (both networks' parameters, statistics and optimizer state) and how it is
built: `create_train_state` for training, `abstract_train_state` as a restore target (both
through `builder.build`)."""

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
from jaxcolor.data.hints import condition_channels
from jaxcolor.nets import build, registry
from jaxcolor.training import image_pool

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
    """The static halves of the trained networks (graph definitions) and their optimizers.

    Purely static: the frozen networks (sketch extractor, VGG-19) are an argument of the steps
    (`training/frozen.py`), not part of this."""

    g_graph: nnx.GraphDef
    d_graph: nnx.GraphDef | None
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation | None
    schedule: optax.Schedule
    takes_reference: bool = False  # the generator is called with reference= (batch["reference"])


def _uses_ema(config: ml_collections.ConfigDict) -> bool:
    """train.ema_decay > 0: the state keeps a moving average of the generator's parameters."""
    return config.train.ema_decay > 0


def _moving_average_start(params: PyTree) -> PyTree:
    """The EMA's first value: a copy of `params` (its own buffers: the step donates both)."""
    return jax.tree.map(jnp.copy, params)


def _learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
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
    config: ml_collections.ConfigDict, *, mesh: Mesh, platform: str | None = None
) -> tuple[TrainState, Networks]:
    """Builds both networks and their optimizers; the state is replicated over `mesh`.

    The generator reads `condition_channels(config)` channels (the batch schema's condition).
    Platform-dependent choices (upsample_impl="auto") follow `platform`, by default that of
    the mesh's devices. `builder.build` is the one caller outside tests.
    """
    in_channels = condition_channels(config)
    key = jax.random.key(config.seed)
    g_key, d_key, step_key = jax.random.split(key, 3)
    schedule = _learning_rate_schedule(config)
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
        ema=_moving_average_start(g_params) if _uses_ema(config) else None,
    )
    state = jax.device_put(state, parallel.replicated(mesh))
    reference = registry.generator(config.model.generator).takes_reference
    return state, Networks(g_graph, d_graph, g_tx, d_tx, schedule, takes_reference=reference)


def abstract_train_state(
    config: ml_collections.ConfigDict, *, sharding: jax.sharding.Sharding
) -> tuple[TrainState, Networks]:
    """`create_train_state` without computing the state: its shapes and dtypes placed with
    `sharding` (a restore target, or a compile-only TPU mesh's), and the networks, built for the
    platform of `sharding`'s devices. Nothing is allocated."""
    mesh = parallel.create_mesh(1, devices=jax.local_devices()[:1])  # only traced: any one device
    created = {}
    target = next(iter(sharding.device_set)).platform

    def shapes() -> TrainState:
        state, created["nets"] = create_train_state(config, mesh=mesh, platform=target)
        return state

    return parallel.placed_shapes(jax.eval_shape(shapes), sharding), created["nets"]
