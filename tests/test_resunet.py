"""Residual attention U-Net: configs/resunet_palette.py's size, the model's outputs, deep
supervision in the step, a short training run, and JAX == PyTorch export parity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import load_config
from flax import nnx
from test_export import (
    TOL,
    _inputs,
    _jax_forward,
    _parity,
    _random_nets,
    _real_batch,
    _torch_module,
    _trained_nets,
)

from jaxcolor import parallel
from jaxcolor.core.errors import ConfigError
from jaxcolor.export import config_json
from jaxcolor.nets.build import build_discriminator, build_generator
from jaxcolor.nets.layers import count_params
from jaxcolor.nets.resunet.flax import AttentionGate, ResUNetGenerator
from jaxcolor.run import benchmark
from jaxcolor.training import config_checks
from jaxcolor.training.state import create_train_state
from jaxcolor.training.step import jit_train_step


def abstract_train_state(config, *, mesh):
    """(create_train_state's state as ShapeDtypeStructs, its Networks); nothing is computed."""
    created = {}

    def init():
        state, created["nets"] = create_train_state(config, mesh=mesh)
        return state

    state = jax.eval_shape(init)
    return state, created["nets"]


# Stated in configs/resunet_palette.py's docstring.
G_PARAMS, G_AUX_PARAMS, D_PARAMS = 34_184_845, 1_158, 2_778_945


def test_full_size_parameter_counts():
    c = load_config("resunet_palette")
    config_checks.validate(c)
    cin = config_json.architectures(c.to_dict())["generator"]["in_channels"]
    assert cin == 13  # sketch + 12 palette planes
    g = nnx.eval_shape(
        lambda: build_generator(
            c.model.generator, in_channels=cin, dtype="float32", rngs=nnx.Rngs(0)
        )
    )
    d = nnx.eval_shape(
        lambda: build_discriminator(
            c.model.discriminator, in_channels=cin + 3, dtype="float32", rngs=nnx.Rngs(0)
        )
    )
    assert count_params(g) == G_PARAMS
    assert count_params(g.aux_heads) == G_AUX_PARAMS
    assert count_params(d) == D_PARAMS
    assert (c.image_size, c.model.image_pool.size, c.model.image_pool.prob) == (512, 50, 0.5)
    assert (c.loss.recon_weight, c.optimizer.learning_rate, c.optimizer.b1) == (100.0, 2e-4, 0.5)
    assert len(c.loss.aux_weights) == c.model.generator.num_aux == 2


def test_plain_call_is_one_image_and_aux_outputs_are_opt_in():
    # _small()'s generator (its initialisers then compile once for both tests).
    g = ResUNetGenerator(in_channels=13, ngf=4, num_downs=3, max_mult=4, rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(1), (2, 32, 48, 13), minval=-1, maxval=1)  # not square

    @nnx.jit
    def outputs(g, x):
        return g(x, train=False), g(x, train=False, return_aux=True)

    for y, (image, aux) in [outputs(g, x)]:
        assert y.shape == (2, 32, 48, 3) and y.dtype == jnp.float32
        assert float(jnp.abs(y).max()) <= 1.0
        np.testing.assert_allclose(image, y, atol=1e-6)
        assert [a.shape for a in aux] == [(2, 16, 24, 3), (2, 8, 12, 3)]
        assert all(float(jnp.abs(a).max()) <= 1.0 for a in aux)


def test_attention_gate_scales_the_skip_by_sigmoid_coefficients():
    gate = AttentionGate(6, 8, 3, dtype=jnp.float32, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 6))
    g = jax.random.normal(jax.random.key(1), (2, 4, 4, 8))  # the coarser level's features
    alpha = gate.coefficients(x, g)
    assert alpha.shape == (2, 8, 8, 1)
    assert float(alpha.min()) > 0 and float(alpha.max()) < 1 and float(alpha.std()) > 0
    np.testing.assert_allclose(gate(x, g), x * alpha, rtol=1e-6)
    gate.psi.bias[...] = jnp.full((1,), -50.0)  # closed gate: the skip is dropped
    assert float(jnp.abs(gate(x, g)).max()) < 1e-12
    gate.psi.bias[...] = jnp.full((1,), 50.0)  # open gate: the skip passes unchanged
    np.testing.assert_allclose(gate(x, g), x, rtol=1e-6)


def _small(hints="palette"):
    """configs/resunet_palette.py at 32 px with narrow networks (8 examples over 8 devices)."""
    c = load_config("resunet_palette")
    c.image_size, c.batch_size, c.data.hints = 32, 8, hints
    c.model.generator.update(ngf=4, num_downs=3, max_mult=4)
    c.model.discriminator.update(ndf=8, n_layers=2)
    c.model.image_pool.size = 12  # full after 2 steps, so the run uses stored fakes
    c.optimizer.learning_rate = 1e-3
    c.compute_dtype = "float32"  # the full config computes in bfloat16; CPU tests in float32
    config_checks.validate(c)
    return c


def _cin(c):
    return config_json.architectures(c.to_dict())["generator"]["in_channels"]


@pytest.mark.parametrize("hints", ["palette", "none"])
def test_config_trains_at_small_size(hints):
    c = _small(hints)
    mesh = parallel.create_mesh(1)
    state, nets = create_train_state(c, mesh=mesh)
    assert state.pool.images.shape == (12, 32, 32, _cin(c) + 3)
    step = jit_train_step(nets, c, mesh)
    batch = parallel.to_global(_real_batch(c, 8), parallel.batch_sharding(mesh))
    history = []
    for _ in range(12):
        state, metrics = step(state, {}, batch)
        history.append(jax.device_get(metrics))
    for m in history:
        assert all(np.isfinite(v) for v in m.values()), m
        assert not m["nonfinite"]
    assert {"g_aux1", "g_aux2", "d_pool_fraction"} <= set(history[0])
    for name in ("g_l1", "g_aux1", "g_aux2", "g_loss"):
        first, last = history[0][name], np.mean([m[name] for m in history[-3:]])
        assert last < 0.95 * first, (name, first, last)  # g_l1: 0.419 -> 0.374
    assert max(m["d_pool_fraction"] for m in history) > 0


def test_deep_supervision_is_off_without_weights_and_checked():
    c = _small()
    mesh = parallel.create_mesh(1)
    batch = parallel.to_global(_real_batch(c, 8), parallel.batch_sharding(mesh))
    for weights, aux_metrics in (((0.0, 0.0), set()), ((0.0, 2.0), {"g_aux1", "g_aux2"})):
        c.loss.aux_weights = weights  # resunet without deep supervision: no aux outputs used
        state, nets = abstract_train_state(c, mesh=mesh)
        _, metrics = jax.eval_shape(jit_train_step(nets, c, mesh), state, {}, batch)
        assert {"g_aux1", "g_aux2"} & set(metrics) == aux_metrics
    c.loss.aux_weights = (1.0,)
    with pytest.raises(ConfigError, match="loss.aux_weights has 1 weights"):
        config_checks.validate(c)
    u = load_config("tiny")
    u.loss.aux_weights = (1.0, 1.0)
    with pytest.raises(ConfigError, match="loss.aux_weights=.*model.generator.name='resunet'"):
        config_checks.validate(u)
    u.loss.aux_weights = ()
    u.model.image_pool.size, u.loss.gan_mode = 50, "none"
    with pytest.raises(ConfigError, match="model.image_pool.size > 0 needs a discriminator"):
        config_checks.validate(u)


def _export_config():
    c = _small()
    c.batch_size = 4
    c.model.generator.update(ngf=6, num_downs=3, max_mult=4)  # widths 6, 12, 24, 24
    return c


def test_jax_and_pytorch_agree_random_and_trained():
    c = _export_config()
    archs = config_json.architectures(c.to_dict())
    exported = config_json.make_config_json(
        c.to_dict(), step=0, version="x", with_discriminator=False
    )
    assert exported["generator"]["aux_outputs"] and not exported["generator"]["pix2pix_compatible"]
    assert exported["inputs"]["size_multiple"] == 2**c.model.generator.num_downs
    random = _random_nets(c)
    diffs = _parity(c, random)
    assert max(diffs.values()) <= TOL, diffs
    x = _inputs(c)["real"][0]
    assert np.abs(_jax_forward(*random["generator"], x)).max() > 0.5

    # The aux heads are in the export too: torch forward(x, return_aux=True) matches.
    graph, s = random["generator"]
    _, jax_aux = nnx.merge(graph, s.params, s.stats)(jnp.asarray(x), train=False, return_aux=True)
    module = _torch_module("generator", archs["generator"], s)
    with torch.no_grad():
        _, torch_aux = module(torch.from_numpy(np.array(x)).permute(0, 3, 1, 2), return_aux=True)
    for a, t in zip(jax_aux, torch_aux, strict=True):
        assert np.abs(np.asarray(a) - t.permute(0, 2, 3, 1).numpy()).max() <= TOL

    trained = _trained_nets(c, random, steps=3)
    assert not np.array_equal(
        trained["generator"][1].params["gates"][0]["psi"]["kernel"],
        random["generator"][1].params["gates"][0]["psi"]["kernel"],
    )
    diffs = _parity(c, trained)
    assert max(diffs.values()) <= TOL, diffs


def test_bench_flops_of_the_resunet_match_xla_count():
    c = _small()
    c.image_size = (32, 48)
    report = benchmark.analytic_step_flops(c)
    g = nnx.eval_shape(
        lambda: build_generator(
            c.model.generator, in_channels=13, dtype="float32", rngs=nnx.Rngs(0)
        )
    )
    graph, params, stats = nnx.split(g, nnx.Param, nnx.BatchStat)
    forward = jax.jit(lambda p, s, x: nnx.merge(graph, p, s)(x, train=False))
    x = jax.ShapeDtypeStruct((1, 32, 48, 13), jnp.float32)
    xla = benchmark.xla_flops(forward.lower(params, stats, x).compile())
    # XLA also counts the elementwise ops and skips the taps on the 3x3 convs' zero padding.
    assert xla is None or 0.9 < xla / report["g_forward"] < 1.1, (xla, report)
