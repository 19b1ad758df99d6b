"""The bench's analytic FLOPs (run/benchmark.py) against XLA's count of the compiled
forward of the networks every config in configs/ builds."""

import jax
import jax.numpy as jnp
import pytest
from conftest import REPO, load_config
from flax import nnx

from jaxcolor.core.image_size import image_hw
from jaxcolor.data.hints import condition_channels
from jaxcolor.nets import registry
from jaxcolor.nets.build import build_discriminator, build_generator
from jaxcolor.run import benchmark
from jaxcolor.training import config_checks

CONFIGS = [
    "cpu128",
    "default",
    "pod",
    "tiny",
    "reference",
    "resunet_palette",
    "sketch_extractor",
    "unet_scribbles",
]
# 128 px, not 32-64: the analytic count keeps the taps on the convs' zero padding (2 x MACs of
# the dense conv), XLA skips them, and on 32-64 px maps they are 5-10 % of the taps (a 64 px
# PatchGAN: analytic / XLA 1.09). 128 px is also the smallest size the reference config's
# 3-scale discriminator (n_layers 3) accepts; its 1/4 scale still runs on 32 px, so padding is
# 7 % of its taps there, less the elementwise ops XLA counts and the analytic count leaves out.
SIZES = {"unet_scribbles": (128, 192)}  # keeps the config's non-square shape
NUM_DOWNS = {"default": 7, "pod": 7, "reference": 7}  # 128 px -> 1x1, as unet_256 at 256 px
TOLERANCE = 0.05


def _small(name: str):
    """configs/<name>.py at 128 px with narrow networks (compiled only, never run)."""
    c = load_config(name, "tpu=8") if name == "pod" else load_config(name)
    c.image_size = SIZES.get(name, 128)
    g = c.model.generator
    g.ngf = 8
    g.num_downs = NUM_DOWNS.get(name, g.num_downs)
    if g.name == "reference_unet":
        g.style_width, g.style_dim = 8, 32
    c.model.discriminator.ndf = 8
    config_checks.validate(c)
    return c


def _spec(config, channels: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((1, *image_hw(config), channels), jnp.float32)


def _generator_xla_flops(config) -> float:
    """XLA's count of one compiled generator forward (abstract float32 parameters)."""
    cin = condition_channels(config)
    g = nnx.eval_shape(
        lambda: build_generator(
            config.model.generator, in_channels=cin, dtype="float32", rngs=nnx.Rngs(0)
        )
    )
    graph, state = nnx.split(g)
    # The reference image has the training image's size (the pipeline's batch["reference"]).
    extra = (
        {"reference": _spec(config, 3)}
        if registry.generator(config.model.generator).takes_reference
        else {}
    )
    forward = jax.jit(lambda s, x, extra: nnx.merge(graph, s)(x, train=False, **extra))
    return benchmark.xla_flops(forward.lower(state, _spec(config, cin), extra).compile())


def _discriminator_xla_flops(config, cin: int) -> float:
    """XLA's count of one compiled discriminator forward (abstract float32 parameters)."""
    d = nnx.eval_shape(
        lambda: build_discriminator(
            config.model.discriminator, in_channels=cin, dtype="float32", rngs=nnx.Rngs(0)
        )
    )
    graph, state = nnx.split(d)
    forward = jax.jit(lambda s, x: nnx.merge(graph, s)(x, train=False))
    return benchmark.xla_flops(forward.lower(state, _spec(config, cin)).compile())


def _assert_close(analytic: int, xla: float | None, what: str) -> None:
    assert xla, f"XLA:CPU reports no FLOP count for the {what}"
    assert abs(analytic / xla - 1) < TOLERANCE, (what, analytic, xla, analytic / xla)


def test_every_config_is_covered():
    assert sorted(p.stem for p in (REPO / "configs").glob("*.py")) == sorted(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_generator_forward_flops_match_xla(name):
    config = _small(name)
    report = benchmark.analytic_step_flops(config)
    _assert_close(report["g_forward"], _generator_xla_flops(config), f"{name} generator")


@pytest.mark.parametrize("name", CONFIGS)
def test_discriminator_forward_flops_match_xla(name):
    config = _small(name)
    cin = condition_channels(config) + config.model.generator.out_channels
    d = benchmark.discriminator_forward_flops(config.model.discriminator, cin, image_hw(config))
    # The step counts it unless gan_mode="none" leaves D out; checked against XLA either way.
    report = benchmark.analytic_step_flops(config)
    assert report["d_forward"] == (0 if config.loss.gan_mode == "none" else d)
    _assert_close(d, _discriminator_xla_flops(config, cin), f"{name} discriminator")


def test_reference_flops_with_four_style_codes_match_xla():
    """style_codes=4: one AdaIN projection per style block, into decoder levels 1..4."""
    config = _small("reference")
    config.model.generator.style_codes = 4
    report = benchmark.analytic_step_flops(config)
    _assert_close(report["g_forward"], _generator_xla_flops(config), "4-code generator")
