"""The extension point: a network family defined in this file alone (a Flax module, its PyTorch
twin and a spec) is registered, trained, exported with parity, and evaluated, with no library
module edited or naming it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from torch import nn

from jaxcolor.core.errors import ConfigError
from jaxcolor.evaluation import evaluator
from jaxcolor.export import exporter, torch_models
from jaxcolor.nets import base, registry
from jaxcolor.nets.layers import conv
from jaxcolor.run import benchmark
from jaxcolor.run.loop import train_and_evaluate
from jaxcolor.training import config_checks


class ToyGenerator(nnx.Module):
    """conv3x3 -> ReLU -> conv3x3 -> tanh, at full resolution."""

    def __init__(self, *, in_channels, out_channels=3, width=8, norm="none", dtype, rngs):
        del norm
        self.dtype = dtype
        self.conv1 = conv(
            in_channels, width, stride=1, use_bias=True, kernel=3, dtype=dtype, rngs=rngs
        )
        self.conv2 = conv(
            width, out_channels, stride=1, use_bias=True, kernel=3, dtype=dtype, rngs=rngs
        )

    def __call__(self, x, *, train: bool, rngs=None):
        del train, rngs
        h = nnx.relu(self.conv1(x.astype(self.dtype)))
        return jnp.tanh(self.conv2(h).astype(jnp.float32))


class TorchToyGenerator(nn.Module):
    def __init__(self, *, in_channels: int, out_channels: int = 3, width: int = 8, norm="none"):
        super().__init__()
        del norm
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv2(torch.relu(self.conv1(x))))


def _layout(arch) -> list[base.Entry]:
    return [
        *base.conv_entries("conv1", ("conv1",), bias=True),
        *base.conv_entries("conv2", ("conv2",), bias=True),
    ]


def _forward_flops(g, in_channels: int, size) -> int:
    h, w = size
    return 2 * h * w * 9 * (in_channels * g["width"] + g["width"] * g["out_channels"])


def _check(config) -> None:
    width = config.model.generator.width
    base.require(width >= 1, f"model.generator.width must be >= 1, got {width}")


TOY = base.NetworkSpec(
    name="toy",
    role=base.GENERATOR,
    flax=f"{__name__}:ToyGenerator",
    torch=f"{__name__}:TorchToyGenerator",
    layout=_layout,
    forward_flops=_forward_flops,
    defaults={"out_channels": 3, "width": 8, "norm": "none"},
    check=_check,
)


@pytest.fixture
def toy_registered():
    registry.register(TOY)
    yield TOY
    registry.unregister(TOY)


def _toy_config(tiny_config):
    c = tiny_config
    c.model.generator = {"name": "toy", "out_channels": 3, "width": 8, "norm": "none"}
    c.num_steps = 4
    return c


def test_unknown_until_registered(tiny_config):
    with pytest.raises(ConfigError, match=r"model.generator.name='toy' is not a known generator"):
        config_checks.validate(_toy_config(tiny_config))


def test_a_family_from_this_file_trains_exports_with_parity_and_evaluates(
    toy_registered, tiny_config, tmp_path
):
    config = _toy_config(tiny_config)
    config.model.generator.width = 0
    with pytest.raises(ConfigError, match="model.generator.width must be >= 1"):
        config_checks.validate(config)  # the family's own rule runs
    config.model.generator.width = 8
    flops = benchmark.analytic_step_flops(config)
    assert flops["g_forward"] == _forward_flops(config.model.generator, 4, (32, 32))

    workdir = str(tmp_path / "run")
    state = train_and_evaluate(config, workdir)
    assert int(state.step) == config.num_steps
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.g.params))

    out = tmp_path / "export"
    exporter.export(workdir, str(out))
    module, cfg = torch_models.load(out)
    assert cfg["generator"]["name"] == "toy" and isinstance(module, TorchToyGenerator)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 4)).astype(np.float32)
    model = ToyGenerator(in_channels=4, dtype=jnp.float32, rngs=nnx.Rngs(0))
    graph, _ = nnx.split(model)
    trained = nnx.merge(graph, jax.device_get(state.g.params))
    expected = np.asarray(trained(jnp.asarray(x), train=False))
    with torch.no_grad():
        got = module(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)

    report = evaluator.evaluate_checkpoint(workdir, split="val")
    assert report["step"] == config.num_steps
    assert report["metrics"] and all(np.isfinite(m["l1"]) for m in report["metrics"].values())
