"""Train state and the jitted GAN step (D update, then G update, as in pix2pix)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
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
from jaxcolor.nets.inputs import Sketcher, apply, generator_kwargs, model_inputs
from jaxcolor.training import image_pool, losses

PyTree = Any
Metrics = dict[str, jax.Array]
NONFINITE = "nonfinite"  # metric: True when this step's losses or gradients had a NaN/Inf
ON_NONFINITE = ("stop", "skip")
POOL_STREAM = 0x9001  # folded into the step key for the image pool's draws


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
) -> tuple[TrainState, Networks]:
    """Builds both networks and their optimizers; the state is replicated over `mesh`.

    `sketch_model` is the frozen extractor of data.sketch = "model:DIR"
    (`sketcher.load_sketcher`), needed only where the steps run: it is not part of the state.
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
        step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(step_key), g=g, d=d, pool=pool
    )
    state = jax.device_put(state, parallel.replicated(mesh))
    reference = registry.generator(config.model.generator).takes_reference
    networks = Networks(
        g_graph, d_graph, g_tx, d_tx, schedule, takes_reference=reference, sketch_model=sketch_model
    )
    return state, networks


def abstract_train_state(
    config: ml_collections.ConfigDict,
    *,
    in_channels: int,
    sharding: jax.sharding.Sharding,
    sketch_model: Sketcher | None = None,
) -> tuple[TrainState, Networks]:
    """`create_train_state` without computing the state: its shapes and dtypes placed with
    `sharding` (a restore target), and the networks. Nothing is allocated."""
    mesh = parallel.create_mesh(1)
    created = {}

    def shapes() -> TrainState:
        state, created["nets"] = create_train_state(
            config, in_channels=in_channels, mesh=mesh, sketch_model=sketch_model
        )
        return state

    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), jax.eval_shape(shapes)
    )
    return abstract, created["nets"]


def check_sketch_model(nets: Networks, config: ml_collections.ConfigDict | None) -> None:
    """data.sketch = "model:DIR" steps run the extractor: `nets` must carry it."""
    if config is not None and is_model_sketch(config.data.sketch) and nets.sketch_model is None:
        raise ValueError(
            f"data.sketch={config.data.sketch!r}: pass sketch_model=sketcher.load_sketcher(config, "
            "sharding) to create_train_state before compiling a step."
        )


def _update(tx: optax.GradientTransformation, net: NetState, grads, stats) -> NetState:
    updates, opt = tx.update(grads, net.opt, net.params)
    return NetState(optax.apply_updates(net.params, updates), stats, opt)


def train_step(
    state: TrainState, batch: dict[str, jax.Array], *, nets: Networks, config
) -> tuple[TrainState, Metrics]:
    """One pix2pix iteration: G forward once, update D on (real, detached fake), update G.

    A step whose losses or gradients are not finite is flagged in `metrics["nonfinite"]`; with
    `train.on_nonfinite = "skip"` its update is dropped (the step counter still advances).
    """
    loss_cfg = config.loss
    mode = loss_cfg.gan_mode
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    condition, target = model_inputs(batch, config, sketch_model=nets.sketch_model)
    extra = generator_kwargs(nets, batch)
    aux_weights = deep_supervision_weights(config)
    if aux_weights:
        extra["return_aux"] = True

    def generate(params):
        return apply(
            nets.g_graph,
            params,
            state.g.stats,
            condition,
            train=True,
            rngs=nnx.Rngs(dropout=key),
            **extra,
        )

    # One generator forward, as pix2pix: D trains on it (detached), then G's gradient flows
    # back through the same activations via the saved VJP.
    g_out, g_vjp, g_stats = jax.vjp(generate, state.g.params, has_aux=True)
    fake = g_out[0] if aux_weights else g_out
    metrics: Metrics = {"lr": nets.schedule(state.step)}

    d, pool = state.d, state.pool
    if mode != "none":
        real_pair = jnp.concatenate([condition, target], axis=-1)
        fake_pair = jnp.concatenate([condition, jax.lax.stop_gradient(fake)], axis=-1)
        if pool is not None:
            # Once the pool is full a share `prob` of D's fakes are past ones; G uses `fake`.
            pool_key = jax.random.fold_in(key, POOL_STREAM)
            prob = config.model.image_pool.prob
            pool, fake_pair, from_pool = image_pool.query(pool, fake_pair, pool_key, prob)
            metrics["d_pool_fraction"] = from_pool.mean()

        def d_loss_fn(params):
            real_logits, stats = apply(nets.d_graph, params, state.d.stats, real_pair, train=True)
            fake_logits, stats = apply(nets.d_graph, params, stats, fake_pair, train=True)
            loss = losses.discriminator_loss(mode, real_logits, fake_logits)
            return loss, (stats, real_logits, fake_logits)

        (d_loss, (d_stats, real_logits, fake_logits)), d_grads = jax.value_and_grad(
            d_loss_fn, has_aux=True
        )(state.d.params)
        d = _update(nets.d_tx, state.d, d_grads, d_stats)
        metrics |= {
            "d_loss": d_loss,
            "d_real": losses.real_probability(mode, real_logits),
            "d_fake": losses.real_probability(mode, fake_logits),
            "d_grad_norm": optax.tree.norm(d_grads),
        }

    def g_loss_fn(g_out):
        generated = g_out[0] if aux_weights else g_out
        recon = losses.reconstruction_loss(loss_cfg.recon, generated, target)
        parts = {f"g_{loss_cfg.recon}": recon}
        loss = loss_cfg.l1_weight * recon
        if aux_weights:
            parts |= losses.deep_supervision_losses(g_out[1], target)
            loss = loss + sum(w * parts[f"g_aux{k}"] for k, w in enumerate(aux_weights, 1))
        stats = d.stats if d is not None else None
        if mode != "none":
            # The freshly updated D judges the fake, as pix2pix's backward_G does.
            pair = jnp.concatenate([condition, generated], -1)
            logits, stats = apply(nets.d_graph, d.params, d.stats, pair, train=True)
            parts["g_gan"] = losses.generator_gan_loss(mode, logits)
            loss = loss + parts["g_gan"]
        return loss, (parts, stats)

    (g_loss, (g_parts, d_stats_after_g)), dfake = jax.value_and_grad(g_loss_fn, has_aux=True)(g_out)
    (g_grads,) = g_vjp(dfake)
    g = _update(nets.g_tx, state.g, g_grads, g_stats)
    if d is not None:
        d = d.replace(stats=d_stats_after_g)
    metrics |= {"g_loss": g_loss, "g_grad_norm": optax.tree.norm(g_grads), **g_parts}
    # One fused reduction over scalars already computed: NaN/Inf anywhere in a loss or a
    # gradient shows up here (a gradient norm is non-finite iff some element is).
    finite = jnp.all(jnp.stack([jnp.isfinite(v) for v in metrics.values()]))
    if config.train.on_nonfinite == "skip":
        g, d, pool = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old),
            (g, d, pool),
            (state.g, state.d, state.pool),
        )
    metrics[NONFINITE] = jnp.logical_not(finite)
    return TrainState(step=state.step + 1, rng=state.rng, g=g, d=d, pool=pool), metrics


def deep_supervision_weights(config: ml_collections.ConfigDict) -> tuple[float, ...]:
    """`loss.aux_weights` when any is non-zero (the generator then returns its aux outputs)."""
    weights = tuple(float(w) for w in config.loss.get("aux_weights", ()))
    return weights if any(w != 0 for w in weights) else ()


def jit_train_step(
    nets: Networks, config: ml_collections.ConfigDict, mesh: Mesh
) -> Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, Metrics]]:
    """`train_step` compiled with replicated state, `data`-sharded batch, donated state."""
    check_sketch_model(nets, config)
    rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    fn = lambda state, batch: train_step(state, batch, nets=nets, config=config)  # noqa: E731
    return jax.jit(fn, in_shardings=(rep, data), out_shardings=(rep, rep), donate_argnums=0)
