"""The jitted GAN step (D update, then G update, as in pix2pix) over a `state.TrainState`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh

from jaxcolor import parallel, summary
from jaxcolor.data import derive
from jaxcolor.nets.inputs import apply, generator_kwargs, model_inputs
from jaxcolor.training import frozen as frozen_lib
from jaxcolor.training import image_pool, losses
from jaxcolor.training.state import NetState, Networks, TrainState
from jaxcolor.training.vgg import perceptual_weights

PyTree = Any
Metrics = summary.Metrics
NONFINITE = "nonfinite"  # metric: True when this step's losses or gradients had a NaN/Inf
ON_NONFINITE = ("stop", "skip")
POOL_STREAM = 0x9001  # folded into the step key for the image pool's draws


def _update(tx: optax.GradientTransformation, net: NetState, grads, stats) -> NetState:
    updates, opt = tx.update(grads, net.opt, net.params)
    return NetState(optax.apply_updates(net.params, updates), stats, opt)


def train_step(
    state: TrainState,
    frozen: frozen_lib.Frozen,
    batch: dict[str, jax.Array],
    *,
    nets: Networks,
    config,
) -> tuple[TrainState, Metrics]:
    """One pix2pix iteration: G forward once, update D on (real, detached fake), update G; the
    frozen networks `config` needs (`frozen.load`: sketch extractor, VGG-19) come in `frozen`.

    A step whose losses or gradients are not finite is flagged in `metrics["nonfinite"]`; with
    `train.on_nonfinite = "skip"` its update is dropped (the step counter still advances).
    `metrics.losses` names the loss terms (G's parts, then D's loss) for the console line.
    """
    loss_cfg = config.loss
    mode = loss_cfg.gan_mode
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    frozen_lib.check(frozen, config)
    batch = derive.complete(batch, key, config)  # the device path: sketches and hints made here
    condition, target = model_inputs(batch, config, sketch_model=frozen.get(frozen_lib.SKETCH))
    extra = generator_kwargs(nets, batch)
    aux_weights = _deep_supervision_weights(config)
    if aux_weights:
        extra["return_aux"] = True
    perceptual_w, style_w = perceptual_weights(config)
    hint_w = config.loss.hint_weight
    hint_targets = losses.hint_targets(batch, config.data.hints) if hint_w else None
    # VGG-19 features of the target: no gradient, computed once outside G's loss.
    vgg = frozen.get(frozen_lib.VGG)
    real_features = jax.lax.stop_gradient(vgg(target)) if (perceptual_w or style_w) else None

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
    metrics: dict[str, jax.Array] = {"lr": nets.schedule(state.step)}

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
        parts = Metrics({f"g_{loss_cfg.recon}": recon})  # keeps its order through the VJP
        loss = loss_cfg.recon_weight * recon
        if aux_weights:
            parts |= losses.deep_supervision_losses(g_out[1], target)
            loss = loss + sum(w * parts[f"g_aux{k}"] for k, w in enumerate(aux_weights, 1))
        if real_features is not None:
            fake_features = vgg(generated)
            if perceptual_w:
                parts["g_perceptual"] = losses.perceptual_loss(fake_features, real_features)
                loss = loss + perceptual_w * parts["g_perceptual"]
            if style_w:
                parts["g_style"] = losses.style_loss(fake_features, real_features)
                loss = loss + style_w * parts["g_style"]
        if loss_cfg.ssim_weight:
            parts["g_ssim"] = losses.ssim_loss(generated, target)
            loss = loss + loss_cfg.ssim_weight * parts["g_ssim"]
        if hint_targets is not None:
            parts["g_hint"] = losses.hint_loss(generated, *hint_targets)
            loss = loss + hint_w * parts["g_hint"]
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
    ema = _ema_update(state.ema, g.params, state.step, config) if state.ema is not None else None
    if d is not None:
        d = d.replace(stats=d_stats_after_g)
    metrics |= {"g_loss": g_loss, "g_grad_norm": optax.tree.norm(g_grads), **g_parts}
    # One fused reduction over scalars already computed: NaN/Inf anywhere in a loss or a
    # gradient shows up here (a gradient norm is non-finite iff some element is).
    finite = jnp.all(jnp.stack([jnp.isfinite(v) for v in metrics.values()]))
    if config.train.on_nonfinite == "skip":
        g, d, pool, ema = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old),
            (g, d, pool, ema),
            (state.g, state.d, state.pool, state.ema),
        )
    metrics[NONFINITE] = jnp.logical_not(finite)
    new_state = TrainState(step=state.step + 1, rng=state.rng, g=g, d=d, pool=pool, ema=ema)
    return new_state, Metrics(metrics, losses=(*g_parts, *(["d_loss"] if d is not None else [])))


def ema_decay(step: jax.Array, decay: float) -> jax.Array:
    """The EMA's decay at the update after `step` updates: min(decay, (1 + step) / (10 + step)).

    The warm-up of TensorFlow's ExponentialMovingAverage(num_updates=step): the first decays
    are small (0.1, 0.18, 0.25, ...), so the average forgets the random initialisation within
    a few steps instead of 1 / (1 - decay) of them; from step (10 decay - 1) / (1 - decay) on
    (8,990 for 0.999) it is `decay`.
    """
    step = step.astype(jnp.float32)
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def _ema_update(ema: PyTree, params: PyTree, step: jax.Array, config) -> PyTree:
    """`train.ema_decay`'s moving average of the generator's parameters after this update."""
    decay = ema_decay(step, config.train.ema_decay)
    return optax.incremental_update(params, ema, step_size=1.0 - decay)


def _deep_supervision_weights(config: ml_collections.ConfigDict) -> tuple[float, ...]:
    """`loss.aux_weights` when any is non-zero (the generator then returns its aux outputs)."""
    weights = tuple(float(w) for w in config.loss.aux_weights)
    return weights if any(w != 0 for w in weights) else ()


def jit_train_step(
    nets: Networks, config: ml_collections.ConfigDict, mesh: Mesh
) -> Callable[[TrainState, frozen_lib.Frozen, dict[str, jax.Array]], tuple[TrainState, Metrics]]:
    """`train_step(state, frozen, batch)` compiled with replicated state and frozen networks,
    `data`-sharded batch, donated state."""
    rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    return jax.jit(
        lambda state, frozen, batch: train_step(state, frozen, batch, nets=nets, config=config),
        in_shardings=(rep, rep, data),
        out_shardings=(rep, rep),
        donate_argnums=(0,),
    )
