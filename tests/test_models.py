"""Model structure: pix2pix parameter counts, shapes, norms, dropout behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxcolor.models import PatchDiscriminator, UNetGenerator, build_generator, count_params


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
