"""Model structure: pix2pix parameter counts, shapes, norms, dropout behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxcolor.nets.build import build_generator
from jaxcolor.nets.layers import UpConv, count_params, resolve_upsample_impl
from jaxcolor.nets.pix2pix.flax import PatchDiscriminator, UNetGenerator


def _abstract(cls, **kwargs):
    # eval_shape: count the 54M-parameter model without allocating it.
    return nnx.eval_shape(lambda: cls(rngs=nnx.Rngs(0), **kwargs))


@pytest.mark.parametrize(("in_channels", "expected"), [(3, 54_413_955), (4, 54_414_979)])
def test_unet_256_parameter_count_matches_pix2pix(in_channels, expected):
    assert count_params(_abstract(UNetGenerator, in_channels=in_channels)) == expected


def test_patchgan_70_parameter_count_matches_pix2pix():
    assert count_params(_abstract(PatchDiscriminator, in_channels=6)) == 2_768_705


def test_batchnorm_running_statistics_are_not_parameters():
    g = _abstract(UNetGenerator, in_channels=4, num_downs=6, ngf=8)
    stats = jax.tree.leaves(nnx.state(g, nnx.BatchStat))
    assert stats, "BatchNorm keeps running statistics"
    assert count_params(g) == sum(x.size for x in jax.tree.leaves(nnx.state(g, nnx.Param)))


def test_patchgan_receptive_field_output_is_30x30_at_256():
    def forward(x):
        return PatchDiscriminator(in_channels=6, rngs=nnx.Rngs(0))(x, train=False)

    out = jax.eval_shape(forward, jax.ShapeDtypeStruct((1, 256, 256, 6), jnp.float32))
    assert out.shape == (1, 30, 30, 1)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_generator_shapes_range_and_norms(norm):
    g = UNetGenerator(in_channels=4, num_downs=5, ngf=8, norm=norm, rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(1), (2, 64, 96, 4), minval=-1, maxval=1)
    y = g(x, train=False)
    assert y.shape == (2, 64, 96, 3) and y.dtype == jnp.float32
    assert float(jnp.abs(y).max()) <= 1.0
    has_stats = bool(jax.tree.leaves(nnx.state(g, nnx.BatchStat)))
    assert has_stats == (norm == "batch")


def test_dropout_is_stochastic_in_training_and_off_in_eval():
    # num_downs=6 has one 8*ngf decoder block with dropout, as pix2pix's num_downs - 5 rule.
    g = UNetGenerator(in_channels=1, num_downs=6, ngf=4, norm="instance", rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(1), (1, 64, 64, 1), minval=-1, maxval=1)
    a = g(x, train=True, rngs=nnx.Rngs(dropout=1))
    b = g(x, train=True, rngs=nnx.Rngs(dropout=2))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(g(x, train=False), g(x, train=False))
    no_drop = UNetGenerator(
        in_channels=1, num_downs=6, ngf=4, norm="instance", dropout=0.0, rngs=nnx.Rngs(0)
    )
    np.testing.assert_array_equal(
        no_drop(x, train=True, rngs=nnx.Rngs(dropout=1)),
        no_drop(x, train=True, rngs=nnx.Rngs(dropout=2)),
    )


def test_weights_follow_pix2pix_normal_init():
    g = UNetGenerator(in_channels=4, num_downs=6, ngf=16, rngs=nnx.Rngs(0))
    kernel = np.asarray(g.downs[2].kernel[...])
    assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002
    scale = np.asarray(g.down_norms[2].layer.scale[...])
    assert abs(scale.mean() - 1.0) < 0.01 and 0.005 < scale.std() < 0.04


def test_bfloat16_compute_keeps_float32_parameters(tiny_config):
    g = build_generator(
        tiny_config.model.generator, in_channels=4, dtype="bfloat16", rngs=nnx.Rngs(0)
    )
    assert {x.dtype for x in jax.tree.leaves(nnx.state(g, nnx.Param))} == {jnp.dtype("float32")}
    y = g(jnp.zeros((1, 32, 32, 4)), train=False)
    assert y.dtype == jnp.float32


def test_unknown_model_options_name_the_config_key(tiny_config):
    tiny_config.model.generator.name = "resnet9"
    with pytest.raises(ValueError, match="model.generator.name"):
        build_generator(
            tiny_config.model.generator, in_channels=4, dtype="float32", rngs=nnx.Rngs(0)
        )
    with pytest.raises(ValueError, match="norm"):
        UNetGenerator(in_channels=4, num_downs=5, norm="group", rngs=nnx.Rngs(0))


def _up_convs(**kwargs):
    """The same UpConv parameters computed both ways."""
    ref = UpConv(6, 5, impl="conv_transpose", use_bias=True, dtype=jnp.float32, rngs=nnx.Rngs(0))
    sub = UpConv(6, 5, impl="subpixel", use_bias=True, dtype=jnp.float32, rngs=nnx.Rngs(0))
    ref.bias[...] = jax.random.normal(jax.random.key(1), ref.bias.shape)
    nnx.update(sub, nnx.state(ref, nnx.Param))
    return ref, sub


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 1, 1), (3, 8, 8)])
def test_subpixel_upconv_equals_conv_transpose_outputs_and_gradients(shape):
    ref, sub = _up_convs()
    x = jax.random.normal(jax.random.key(2), (*shape, 6))
    cotangent = jax.random.normal(jax.random.key(3), (shape[0], 2 * shape[1], 2 * shape[2], 5))

    def loss(module, x):
        return jnp.vdot(module(x), cotangent)

    np.testing.assert_allclose(sub(x), ref(x), rtol=1e-5, atol=1e-5)
    assert sub(x).shape == (shape[0], 2 * shape[1], 2 * shape[2], 5)
    (g_ref, dx_ref), (g_sub, dx_sub) = (nnx.grad(loss, argnums=(0, 1))(m, x) for m in (ref, sub))
    np.testing.assert_allclose(dx_sub, dx_ref, rtol=1e-5, atol=1e-5)
    for name in ("kernel", "bias"):
        np.testing.assert_allclose(g_sub[name][...], g_ref[name][...], rtol=1e-5, atol=1e-4)


def test_generator_upsample_impls_share_parameters_and_agree(tiny_config):
    tiny_config.model.generator.num_downs = 4
    gens = {}
    for impl in ("conv_transpose", "subpixel"):
        tiny_config.model.generator.upsample_impl = impl
        gens[impl] = build_generator(
            tiny_config.model.generator, in_channels=4, dtype="float32", rngs=nnx.Rngs(0)
        )
    states = [nnx.to_pure_dict(nnx.state(g)) for g in gens.values()]
    jax.tree.map(np.testing.assert_array_equal, *states)  # same tree, same values
    x = jax.random.uniform(jax.random.key(4), (2, 16, 16, 4), minval=-1, maxval=1)

    def loss(g):
        return jnp.square(g(x, train=False)).mean()

    value_and_grad = nnx.jit(nnx.value_and_grad(loss))
    values, grads = zip(*(value_and_grad(g) for g in gens.values()), strict=True)
    np.testing.assert_allclose(values[0], values[1], rtol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
        nnx.to_pure_dict(grads[0]),
        nnx.to_pure_dict(grads[1]),
    )


def test_upsample_impl_auto_and_unknown():
    assert resolve_upsample_impl("auto") == "subpixel"  # the tests run on XLA:CPU
    with pytest.raises(ValueError, match="model.generator.upsample_impl"):
        resolve_upsample_impl("pixelshuffle")


def test_each_spec_declares_the_options_its_flax_module_and_torch_twin_take():
    """A family's spec defaults are its Flax module's keyword defaults; the PyTorch twin takes
    the same but the Flax-only ones, and refuses any other option (no `**_`)."""
    import inspect

    pytest.importorskip("torch")
    from jaxcolor.nets import registry
    from jaxcolor.nets.base import DISCRIMINATOR, GENERATOR
    from jaxcolor.nets.registry import _resolve

    def keyword_defaults(cls, skip):
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # after self
        assert all(p.kind != p.VAR_KEYWORD for p in params), cls  # strict: no **kwargs
        return {p.name: p.default for p in params if p.name not in skip}

    for role in (GENERATOR, DISCRIMINATOR):
        for name in registry.names(role):
            spec = registry.lookup(role, name)
            flax = keyword_defaults(_resolve(spec.flax), {"in_channels", "dtype", "rngs"})
            assert flax == dict(spec.defaults), name
            twin = keyword_defaults(_resolve(spec.torch), {"in_channels"})
            torch_options = {k: v for k, v in spec.defaults.items() if k not in spec.flax_only}
            assert twin == torch_options, name
            arch = {**registry.section(role, name), "in_channels": 4, "file": "g.safetensors"}
            registry.build_torch(role, arch)  # an export's own fields are not options
            with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
                _resolve(spec.torch)(**registry.torch_kwargs(role, arch), bogus=1)
