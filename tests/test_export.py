"""Export to PyTorch: parity with JAX, pix2pix key compatibility, init_from, colorize, formats."""

import functools
import json
import os
import pathlib
import subprocess
import sys

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import REPO, load_config
from flax import nnx
from PIL import Image
from safetensors.torch import save_file
from tensorboard.backend.event_processing import event_accumulator
from torch import nn

from jaxcolor import inference, parallel
from jaxcolor.core.errors import ConfigError, ExportError, InputError
from jaxcolor.data import decode as decode_lib
from jaxcolor.data import hints as hints_lib
from jaxcolor.data import pipeline, sources
from jaxcolor.data import sketch as sketch_lib
from jaxcolor.evaluation.evaluator import SplitEvaluator, evaluate_checkpoint
from jaxcolor.export import config_json, exporter, torch_models
from jaxcolor.export.__main__ import main as export_main
from jaxcolor.nets import convert
from jaxcolor.nets.build import build_discriminator, build_generator
from jaxcolor.nets.inputs import model_inputs
from jaxcolor.nets.pix2pix import spec as pix2pix_spec
from jaxcolor.run.loop import train_and_evaluate
from jaxcolor.training import pytorch_weights
from jaxcolor.training.state import NetState, TrainState, create_train_state
from jaxcolor.training.step import jit_train_step

TOL = 1e-4
torch.set_num_threads(2)


# ---------------------------------------------------------------------------------------------
# A reference written the way pytorch-CycleGAN-and-pix2pix's models/networks.py builds its nets
# (UnetGenerator grows UnetSkipConnectionBlocks from the innermost outward; use_bias comes from
# the norm layer's type), so its state_dict names are pix2pix's, independent of torch_models.


def pix2pix_norm_layer(norm_type):
    if norm_type == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)


def _bias_for(norm_layer):
    func = norm_layer.func if isinstance(norm_layer, functools.partial) else norm_layer
    return func == nn.InstanceNorm2d


class RefUnetBlock(nn.Module):
    def __init__(
        self,
        outer_nc,
        inner_nc,
        input_nc=None,
        submodule=None,
        outermost=False,
        innermost=False,
        norm_layer=nn.BatchNorm2d,
        use_dropout=False,
    ):
        super().__init__()
        self.outermost = outermost
        use_bias = _bias_for(norm_layer)
        input_nc = outer_nc if input_nc is None else input_nc
        down_conv = nn.Conv2d(input_nc, inner_nc, 4, 2, 1, bias=use_bias)
        if outermost:
            up_conv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1)
            seq = [down_conv, submodule, nn.ReLU(True), up_conv, nn.Tanh()]
        elif innermost:
            up_conv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=use_bias)
            seq = [nn.LeakyReLU(0.2, True), down_conv, nn.ReLU(True), up_conv, norm_layer(outer_nc)]
        else:
            up_conv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=use_bias)
            seq = [nn.LeakyReLU(0.2, True), down_conv, norm_layer(inner_nc), submodule]
            seq += [nn.ReLU(True), up_conv, norm_layer(outer_nc)]
            seq += [nn.Dropout(0.5)] if use_dropout else []
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class RefUnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, num_downs, ngf=64, norm_layer=nn.BatchNorm2d, **kw):
        super().__init__()
        use_dropout = kw.get("use_dropout", False)
        block = RefUnetBlock(ngf * 8, ngf * 8, norm_layer=norm_layer, innermost=True)
        for _ in range(num_downs - 5):
            block = RefUnetBlock(
                ngf * 8, ngf * 8, submodule=block, norm_layer=norm_layer, use_dropout=use_dropout
            )
        for mult in (4, 2, 1):
            block = RefUnetBlock(ngf * mult, ngf * mult * 2, submodule=block, norm_layer=norm_layer)
        self.model = RefUnetBlock(
            output_nc, ngf, input_nc, submodule=block, outermost=True, norm_layer=norm_layer
        )

    def forward(self, x):
        return self.model(x)


class RefNLayerDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf=64, n_layers=3, norm_layer=nn.BatchNorm2d):
        super().__init__()
        use_bias = _bias_for(norm_layer)
        seq = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=use_bias)]
            seq += [norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


# ---------------------------------------------------------------------------------------------
# Helpers


def _config(tiny, *, norm, num_downs, ngf, hints="blur", size=32, n_layers=2):
    c = tiny
    c.image_size = size
    c.data.hints = hints
    c.model.generator.update(norm=norm, num_downs=num_downs, ngf=ngf)
    c.model.discriminator.update(norm=norm, n_layers=n_layers)
    return c


def _real_batch(config, n=8, seed=3):
    """uint8 {color, sketch, hints} made from the synthetic cartoons as the pipeline makes them."""
    source = sources.SyntheticCartoonSource(n, config.image_size, seed=seed)
    colors = [source[i] for i in range(n)]
    return {
        "color": np.stack(colors),
        "sketch": np.stack([sketch_lib.make_sketch(config.data.sketch, c) for c in colors]),
        "hints": np.stack([hints_lib.make_hints(config.data.hints, c) for c in colors]),
    }


def _inputs(config, n=4):
    """(generator input, discriminator input) pairs: random and real-looking, NHWC float32."""
    cond, color = (np.asarray(a) for a in model_inputs(_real_batch(config, n)))
    rng = np.random.default_rng(0)
    cond_rand = rng.uniform(-1, 1, cond.shape).astype(np.float32)
    color_rand = rng.uniform(-1, 1, color.shape).astype(np.float32)
    return {
        "random": (cond_rand, np.concatenate([cond_rand, color_rand], -1)),
        "real": (cond, np.concatenate([cond, color], -1)),
    }


@functools.partial(jax.jit, static_argnums=0)
def _jax_apply(graph, params, stats, x):
    return nnx.merge(graph, params, stats)(x, train=False)


def _jax_forward(graph, net_state, x):
    """The JAX network in inference mode (running statistics, no dropout), float32."""
    return np.asarray(_jax_apply(graph, net_state.params, net_state.stats, jnp.asarray(x)))


def _torch_forward(module, x):
    with torch.no_grad():
        y = module(torch.from_numpy(np.array(x)).permute(0, 3, 1, 2))
    return y.permute(0, 2, 3, 1).numpy()


def _to_torch(tensors):
    return {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}


def _torch_module(net, arch, net_state, step=0):
    tensors = convert.flax_to_torch(net, arch, net_state.params, net_state.stats, step=step)
    module = torch_models.build(net, arch)
    module.load_state_dict(_to_torch(tensors), strict=True)
    return module.eval()


def _abstract(config):
    """{net: (graph, NetState of ShapeDtypeStructs)} without running any initialiser."""
    archs = config_json.architectures(config.to_dict())
    builders = {"generator": build_generator, "discriminator": build_discriminator}
    out = {}
    for net, builder in builders.items():
        cfg = config.model[net]
        model = nnx.eval_shape(
            lambda b=builder, c=cfg, n=net: b(
                c, in_channels=archs[n]["in_channels"], dtype="float32", rngs=nnx.Rngs(0)
            )
        )
        graph, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
        out[net] = (graph, NetState(nnx.to_pure_dict(params), nnx.to_pure_dict(stats), None))
    return out


def _unit_scale(net_state, seed):
    """Random weights at a scale where activations are O(1), and non-trivial BN statistics."""
    rng = np.random.default_rng(seed)

    def draw(path, x):
        name = str(path[-1].key)
        if name == "kernel":
            fan_in = x.shape[0] * x.shape[1] * x.shape[2]
            return rng.normal(0, (2 / fan_in) ** 0.5, x.shape).astype(np.float32)
        if name in ("scale", "var"):
            return rng.uniform(0.5, 1.5, x.shape).astype(np.float32)
        return rng.normal(0, 0.2, x.shape).astype(np.float32)  # bias, mean

    return net_state.replace(
        params=jax.tree_util.tree_map_with_path(draw, net_state.params),
        stats=jax.tree_util.tree_map_with_path(draw, net_state.stats),
    )


def _random_nets(config, seed=0):
    """{net: (graph, NetState)} with `_unit_scale` weights."""
    return {
        net: (graph, _unit_scale(s, seed + i))
        for i, (net, (graph, s)) in enumerate(_abstract(config).items())
    }


def _trained_nets(config, random_nets, steps):
    """{net: (graph, NetState)}: `random_nets` after `steps` jitted train steps on real batches."""
    mesh = parallel.create_mesh(1)
    created = {}

    def init():
        state, created["nets"] = create_train_state(config, mesh=mesh)
        return state

    # create_train_state's shapes, filled in numpy: compiling its initialisers would take
    # longer than the rest of the test. Adam's moments start at zero as optax.adam's init.
    state = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), jax.eval_shape(init))
    g, d = random_nets["generator"][1], random_nets["discriminator"][1]
    state = state.replace(
        g=state.g.replace(params=g.params, stats=g.stats),
        d=state.d.replace(params=d.params, stats=d.stats),
    )
    state = jax.device_put(state, parallel.replicated(mesh))
    nets = created["nets"]
    step = jit_train_step(nets, config, mesh)
    batch = parallel.to_global(
        _real_batch(config, config.batch_size), parallel.batch_sharding(mesh)
    )
    for _ in range(steps):
        state, metrics = step(state, {}, batch)
    assert np.isfinite(float(metrics["g_loss"]))
    state = jax.device_get(state)
    return {"generator": (nets.g_graph, state.g), "discriminator": (nets.d_graph, state.d)}


def _parity(config, nets) -> dict[str, float]:
    """max |JAX - PyTorch| per network and input kind."""
    archs = config_json.architectures(config.to_dict())
    diffs = {}
    for kind, (g_in, d_in) in _inputs(config).items():
        for net, x in (("generator", g_in), ("discriminator", d_in)):
            graph, s = nets[net]
            expected = _jax_forward(graph, s, x)
            got = _torch_forward(_torch_module(net, archs[net], s), x)
            assert got.shape == expected.shape
            diffs[f"{net}/{kind}"] = float(np.abs(expected - got).max())
    return diffs


# Non-default depth, width and input channels for each norm (hints none: 1 input channel).
ARCHS = {
    "batch": dict(norm="batch", num_downs=6, ngf=8, size=64, n_layers=3),
    "instance": dict(norm="instance", num_downs=5, ngf=12, hints="none", n_layers=2),
    "none": dict(norm="none", num_downs=4, ngf=6, n_layers=2),
}


@pytest.mark.parametrize("norm", list(ARCHS))
def test_jax_and_pytorch_agree_random_and_trained(tiny_config, norm):
    config = _config(tiny_config, **ARCHS[norm])
    config.batch_size = 4
    random = _random_nets(config)
    diffs = _parity(config, random)
    assert max(diffs.values()) <= TOL, diffs
    # Unit-scale weights drive tanh and the logits well away from 0: the check has teeth.
    x = _inputs(config)["real"][0]
    assert np.abs(_jax_forward(*random["generator"], x)).max() > 0.5

    trained = _trained_nets(config, random, steps=3)
    assert not np.array_equal(
        trained["generator"][1].params["downs"][0]["kernel"],
        random["generator"][1].params["downs"][0]["kernel"],
    )
    diffs = _parity(config, trained)
    assert max(diffs.values()) <= TOL, diffs


# ---------------------------------------------------------------------------------------------
# pix2pix compatibility and the round trip


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_export_loads_strictly_into_pix2pix_classes(tiny_config, norm):
    # unet_256's depth (8 downs, dropout in the 3 inner blocks) and a 3-layer PatchGAN, narrow.
    config = _config(tiny_config, norm=norm, num_downs=8, ngf=4, size=256, n_layers=3)
    config.model.discriminator.ndf = 8
    archs = config_json.architectures(config.to_dict())
    nets = _random_nets(config)
    norm_layer = pix2pix_norm_layer(norm)
    references = {
        "generator": (RefUnetGenerator(4, 3, 8, 4, norm_layer, use_dropout=True), (1, 4, 256, 256)),
        "discriminator": (RefNLayerDiscriminator(7, 8, 3, norm_layer), (1, 7, 64, 64)),
    }
    for net, (ref, shape) in references.items():
        assert config_json.pix2pix_compatible(net, archs[net])
        s = nets[net][1]
        ref.load_state_dict(
            _to_torch(convert.flax_to_torch(net, archs[net], s.params, s.stats, step=7)),
            strict=True,
        )
        ours = _torch_module(net, archs[net], s, step=7)
        assert [(k, v.shape) for k, v in ref.state_dict().items()] == [
            (k, v.shape) for k, v in ours.state_dict().items()
        ]
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(ref.eval()(x), ours(x), rtol=0, atol=0)


def test_norm_none_is_flagged_as_not_pix2pix_compatible(tiny_config):
    # pix2pix's norm='none' has no conv biases; jaxcolor's keeps them, so strict loading fails.
    archs = config_json.architectures(_config(tiny_config, **ARCHS["none"]).to_dict())
    assert not config_json.pix2pix_compatible("generator", archs["generator"])
    assert any(e.key.endswith(".bias") for e in pix2pix_spec.unet_layout(archs["generator"]))


@pytest.mark.parametrize("norm", list(ARCHS))
def test_round_trip_flax_torch_flax_is_identical(tiny_config, norm):
    config = _config(tiny_config, **ARCHS[norm])
    archs = config_json.architectures(config.to_dict())
    for net, (_, s) in _random_nets(config).items():
        tensors = convert.flax_to_torch(net, archs[net], s.params, s.stats, step=2)
        params, stats = convert.torch_to_flax(net, archs[net], tensors)
        for before, after in ((s.params, params), (s.stats, stats)):
            assert jax.tree.structure(before) == jax.tree.structure(after)
            for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
                assert a.dtype == b.dtype and np.array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# init_from: a PyTorch pix2pix state_dict starts training


def _placeholder_state(config):
    """A TrainState of zeros with the run's shapes (enough for pytorch_weights.init_from)."""
    zeros = lambda tree: jax.tree.map(lambda x: jax.device_put(np.zeros(x.shape, x.dtype)), tree)  # noqa: E731
    nets = {
        net: s.replace(params=zeros(s.params), stats=zeros(s.stats))
        for net, (_, s) in _abstract(config).items()
    }
    return TrainState(
        step=np.int32(0), rng=np.zeros(2, np.uint32), g=nets["generator"], d=nets["discriminator"]
    )


def test_init_from_pix2pix_safetensors_gives_the_same_network(tiny_config, tmp_path):
    config = _config(tiny_config, norm="batch", num_downs=5, ngf=8)
    generator = _pix2pix_generator(seed=1)
    path = tmp_path / "latest_net_G.safetensors"
    save_file(generator.state_dict(), str(path))

    config.init_from = str(path)
    state = pytorch_weights.init_from(_placeholder_state(config), config)
    x = _inputs(config)["real"][0]
    jax_out = _jax_forward(_abstract(config)["generator"][0], jax.device_get(state.g), x)
    torch_out = _torch_forward(generator, x)
    assert np.abs(torch_out).max() > 0.5
    assert np.abs(jax_out - torch_out).max() <= TOL
    # With train.ema_decay > 0 the moving average starts at the loaded weights too.
    placeholder = _placeholder_state(config)
    with_ema = pytorch_weights.init_from(placeholder.replace(ema=placeholder.g.params), config)
    for ema, loaded in zip(*map(jax.tree.leaves, (with_ema.ema, state.g.params)), strict=True):
        np.testing.assert_array_equal(ema, loaded)

    # Another architecture: the message names the file and the first bad key.
    config.model.generator.ngf = 16
    with pytest.raises(ConfigError, match=r"latest_net_G.safetensors: model.model.0.weight has"):
        pytorch_weights.init_from(_placeholder_state(config), config)
    config.model.generator.update(ngf=8, norm="instance")  # convs with biases, no BatchNorm
    with pytest.raises(ConfigError, match=r"latest_net_G.safetensors does not match .*missing"):
        pytorch_weights.init_from(_placeholder_state(config), config)
    config.init_from = str(tmp_path / "missing.safetensors")
    with pytest.raises(ConfigError, match="missing.safetensors' does not exist"):
        pytorch_weights.init_from(_placeholder_state(config), config)


def test_export_and_evaluate_use_the_ema_weights(tiny_config, tmp_path):
    """With train.ema_decay > 0 (from init_from weights, as a fine-tuning run), the export holds
    the moving average with the running BatchNorm statistics, config.json says so, and
    `python -m jaxcolor.evaluate` scores the same weights."""
    c = tiny_config
    save_file(_pix2pix_generator().state_dict(), str(tmp_path / "g.safetensors"))
    c.update(
        num_steps=2, eval_every=100, checkpoint_every=100, init_from=str(tmp_path / "g.safetensors")
    )
    c.train.ema_decay, c.optimizer.learning_rate = 0.9, 1e-2
    run = tmp_path / "run"
    state = train_and_evaluate(c, str(run))
    exporter.export(str(run), str(tmp_path / "export"))

    cfg = json.loads((tmp_path / "export" / "config.json").read_text())
    assert cfg["generator_weights"]["average"] == "ema"
    assert cfg["generator_weights"]["ema_decay"] == 0.9
    module, _ = torch_models.load(tmp_path / "export")
    graph = _abstract(c)["generator"][0]
    x = _inputs(c)["real"][0]
    host = jax.device_get(state)
    averaged = _jax_forward(graph, host.inference_generator(), x)
    assert np.abs(_torch_forward(module, x) - averaged).max() <= TOL
    assert np.abs(_jax_forward(graph, host.g, x) - averaged).max() > 100 * TOL  # not the raw G

    report = evaluate_checkpoint(str(run))["metrics"]["paired"]
    mesh = parallel.create_mesh(-1)
    nets = create_train_state(c, mesh=mesh)[1]
    split = SplitEvaluator(c, nets, {}, mesh, pipeline.make_sources(c)[1], batch_size=8)
    ema_as_g = state.replace(g=state.g.replace(params=state.ema), ema=None)
    for name, value in split(ema_as_g).columns["paired"].items():
        assert report[name] == pytest.approx(value, rel=1e-6), name
    assert report != pytest.approx(split(state.replace(ema=None)).columns["paired"], rel=1e-6)


# ---------------------------------------------------------------------------------------------
# End to end: train -> python -m jaxcolor.export -> parity, formats, colorize, init_from


def _pix2pix_generator(seed=0):
    """A pix2pix UnetGenerator (4 -> 3, 5 downs, ngf 8) with trained-looking weights."""
    torch.manual_seed(seed)
    generator = RefUnetGenerator(4, 3, 5, 8, pix2pix_norm_layer("batch"))
    with torch.no_grad():
        for m in generator.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
            elif isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                m.weight.normal_(0, 0.15)
    return generator.eval()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """Train tiny from a pix2pix file (init_from), then python -m jaxcolor.export it."""
    workdir = tmp_path_factory.mktemp("run")
    pix2pix = _pix2pix_generator()
    save_file(pix2pix.state_dict(), str(workdir / "latest_net_G.safetensors"))
    c = load_config("tiny")
    c.update(image_size=32, batch_size=8, eval_batch_size=8, num_steps=2, log_every=1)
    c.update(eval_every=2, checkpoint_every=1, init_from=str(workdir / "latest_net_G.safetensors"))
    c.data.num_synthetic = 16
    c.model.generator.update(num_downs=5, ngf=8)
    c.model.discriminator.update(ndf=8, n_layers=2)
    state = jax.device_get(train_and_evaluate(c, str(workdir)))

    out = workdir / "export"
    formats = ["--format", "torchscript"] + (["--format", "onnx"] if _has("onnx") else [])
    # The entry point of `python -m jaxcolor.export`, in-process: a subprocess would spend
    # seconds importing JAX again (test_colorize_* runs a real subprocess).
    export_main(["--workdir", str(workdir), "--out", str(out), "--with_discriminator", *formats])
    assert (out / "generator.safetensors").is_file() and (out / "config.json").is_file()
    return c, workdir, state, out, pix2pix


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_exported_checkpoint_matches_jax(trained_run):
    config, workdir, state, out, _ = trained_run
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["step"] == 2 and cfg["inputs"]["hint_channels"] == 3
    assert cfg["generator"]["in_channels"] == 4 and cfg["discriminator"]["in_channels"] == 7
    restored = exporter.restore(str(workdir))  # the newest checkpoint is the returned state
    for a, b in zip(jax.tree.leaves(restored.state), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)

    graphs = {net: graph for net, (graph, _) in _abstract(config).items()}
    g_in, d_in = _inputs(config)["real"]
    for net, s, graph, x in (
        ("generator", state.g, graphs["generator"], g_in),
        ("discriminator", state.d, graphs["discriminator"], d_in),
    ):
        module, _ = torch_models.load(out, net)
        assert int(module.state_dict()[_first_bn(module)].item()) == 2  # num_batches_tracked
        assert np.abs(_jax_forward(graph, s, x) - _torch_forward(module, x)).max() <= TOL


def _first_bn(module):
    return next(k for k in module.state_dict() if k.endswith("num_batches_tracked"))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_and_onnx_reproduce_eager(trained_run):
    out = trained_run[3]
    eager, _ = torch_models.load(out)
    x = torch.rand(2, 4, 64, 96) * 2 - 1  # not the traced example's shape
    with torch.no_grad():
        expected = eager(x)
        scripted = torch.jit.load(str(out / exporter.TORCHSCRIPT_FILE))(x)
    torch.testing.assert_close(scripted, expected, rtol=0, atol=1e-6)

    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(
        str(out / exporter.ONNX_FILE), providers=["CPUExecutionProvider"]
    )
    (onnx_out,) = session.run(None, {"condition": x.numpy()})
    assert np.abs(onnx_out - expected.numpy()).max() <= TOL  # other conv kernels, float32


def test_export_errors_are_one_line(trained_run, tmp_path):
    config, workdir = trained_run[:2]
    with pytest.raises(ExportError, match="No checkpoint for step 9 .* available steps: 1, 2"):
        exporter.restore(str(workdir), step=9)
    with pytest.raises(SystemExit) as exit_info:
        export_main(["--workdir", str(tmp_path), "--out", str(tmp_path / "o")])
    assert str(exit_info.value).startswith(f"jaxcolor.export: error: No checkpoints in {tmp_path}")
    no_gan = config.copy_and_resolve_references()
    no_gan.loss.gan_mode = "none"
    with pytest.raises(ExportError, match="no discriminator .*drop --with_discriminator"):
        config_json.make_config_json(no_gan.to_dict(), step=1, version="0", with_discriminator=True)


def test_a_fresh_run_starts_from_init_from(trained_run):
    # The step-0 evaluation (before any update) scores the pix2pix generator's own predictions.
    config, workdir, _, _, pix2pix = trained_run
    acc = event_accumulator.EventAccumulator(str(workdir / "tensorboard"))
    acc.Reload()
    logged = {e.step: e.value for e in acc.Scalars("val/l1")}[0]
    val = pipeline.validation_batch(config, pipeline.make_sources(config)[1])
    condition, target = (np.asarray(a) for a in model_inputs(val))
    expected = np.abs(_torch_forward(pix2pix, condition) - target).mean()
    assert abs(logged - expected) <= 1e-5, (logged, expected)


def test_init_from_an_export_dir_loads_both_networks(trained_run):
    config, _, state, out, _ = trained_run
    config = config.copy_and_resolve_references()
    config.init_from = str(out)  # generator.safetensors + discriminator.safetensors
    loaded = jax.device_get(pytorch_weights.init_from(_placeholder_state(config), config))
    for net in ("g", "d"):
        for field in ("params", "stats"):
            a, b = getattr(getattr(loaded, net), field), getattr(getattr(state, net), field)
            assert jax.tree.structure(a) == jax.tree.structure(b)
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
                np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------------------------------------
# colorize


def _write_inputs(folder: pathlib.Path, name: str, size, seed=0):
    source = sources.SyntheticCartoonSource(1, 64, seed=seed)
    color = cv2.resize(source[0], size[::-1], interpolation=cv2.INTER_AREA)
    folder.mkdir(parents=True, exist_ok=True)
    sketch = folder / f"{name}.png"
    cv2.imwrite(str(sketch), sketch_lib.xdog(color))
    hints = folder / "hints" / f"{name}.png"
    hints.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(hints), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
    return color, sketch, hints


def test_colorize_runs_without_jax_and_matches_the_jax_generator(trained_run, tmp_path):
    config, _, state, out, _ = trained_run
    color, sketch, hints = _write_inputs(tmp_path, "a", (32, 32))
    blocker = (
        "import sys, runpy\n"
        "for m in ('jax', 'jaxlib', 'flax', 'optax', 'orbax', 'grain'): sys.modules[m] = None\n"
        "sys.argv = ['colorize'] + sys.argv[1:]\n"
        "runpy.run_module('jaxcolor.colorize', run_name='__main__')\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'jax' and sys.modules[m]]\n"
        "assert not loaded, loaded\n"
    )
    args = ["--model", str(out), "--sketch", str(sketch), "--hints", str(hints)]
    done = subprocess.run(
        [sys.executable, "-c", blocker, *args, "--out", str(tmp_path / "o.png"), "--device", "cpu"],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    written = cv2.cvtColor(cv2.imread(str(tmp_path / "o.png")), cv2.COLOR_BGR2RGB)

    # The same sketch and colour cues through JAX, made by the training pipeline's functions.
    batch = {
        "sketch": sketch_lib.xdog(color)[None],
        "hints": hints_lib.make_hints("blur", color)[None],
        "color": color[None],
    }
    graph = _abstract(config)["generator"][0]
    expected = _jax_forward(graph, state.g, np.asarray(model_inputs(batch)[0]))[0]
    expected = np.clip(np.round((expected + 1) * 127.5), 0, 255)
    assert written.shape == (32, 32, 3)
    assert np.abs(written.astype(np.float32) - expected).max() <= 1


def test_colorize_any_size_and_a_glob_of_sketches(trained_run, tmp_path):
    model = inference.load(trained_run[3], "cpu")
    for name, size in (("wide", (45, 70)), ("tiny", (20, 13))):  # 13 px < the 32 px padding
        _write_inputs(tmp_path / "in", name, size)
    written = inference.colorize_files(
        model,
        str(tmp_path / "in" / "*.png"),
        str(tmp_path / "out"),
        hints=str(tmp_path / "in" / "hints"),
    )
    assert [p.name for p in written] == ["tiny.png", "wide.png"]
    assert cv2.imread(str(written[0])).shape == (20, 13, 3)
    assert cv2.imread(str(written[1])).shape == (45, 70, 3)
    resized = inference.colorize_files(
        model,
        str(tmp_path / "in" / "wide.png"),
        str(tmp_path / "big.png"),
        hints=str(tmp_path / "in" / "hints" / "wide.png"),
        size=64,
    )
    assert cv2.imread(str(resized[0])).shape == (64, 100, 3)  # shorter side 64


def test_colorize_bad_inputs_get_clear_messages(trained_run, tmp_path):
    model = inference.load(trained_run[3], "cpu")
    _, sketch, hints = _write_inputs(tmp_path, "s", (32, 32))
    _, _, other_hints = _write_inputs(tmp_path / "other", "s", (40, 32))
    (tmp_path / "notes.png").write_text("not an image")
    cv2.imwrite(str(tmp_path / "dot.png"), np.full((5, 5), 128, np.uint8))
    out = str(tmp_path / "o.png")

    def fails(match, **kwargs):
        args = dict(sketch=str(sketch), hints=str(hints)) | kwargs
        with pytest.raises(InputError, match=match):
            inference.colorize_files(model, args.pop("sketch"), out, **args)

    fails("Sketch .*missing.png does not exist", sketch=str(tmp_path / "missing.png"))
    fails("notes.png is not an image", sketch=str(tmp_path / "notes.png"))
    fails("dot.png is not an image .*only 5x5 px", sketch=str(tmp_path / "dot.png"))
    fails("matches no image files", sketch=str(tmp_path / "*.jpg"))
    with pytest.raises(InputError, match="would overwrite the sketch"):
        inference.colorize_files(model, str(tmp_path / "s*.png"), str(tmp_path), hints=hints)
    fails("Hints image .*missing.png does not exist", hints=str(tmp_path / "missing.png"))
    fails("is 32x40 but sketch .* is 32x32; they must be the same size", hints=str(other_hints))
    fails(
        "Hints image .*notes.png is not an image colorize can use: not an image",
        hints=str(tmp_path / "notes.png"),
    )
    fails("takes colour hints .*pass --hints", hints=None)
    # A grayscale hints file is used as its gray RGB, as training decodes a grayscale image.
    cv2.imwrite(str(tmp_path / "gray.png"), np.full((32, 32), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "gray_rgb.png"), np.full((32, 32, 3), 128, np.uint8))
    from_gray = inference.colorize_files(model, str(sketch), out, hints=str(tmp_path / "gray.png"))
    expected = _read_rgb(from_gray[0])
    inference.colorize_files(model, str(sketch), out, hints=str(tmp_path / "gray_rgb.png"))
    np.testing.assert_array_equal(_read_rgb(out), expected)
    fails(
        "--hint_points needs a model trained with point hints",
        hints=None,
        hint_points="3,4,#ff0000",
    )
    fails("not of the form x,y,#rrggbb", hints=None, hint_points="3,4,red")
    with pytest.raises(ExportError, match="config.json is missing"):
        inference.load(tmp_path, "cpu")


def test_colorize_a_model_trained_without_hints(tiny_config, tmp_path):
    config = _config(tiny_config, **ARCHS["instance"])  # data.hints = "none": 1 input channel
    nets = _random_nets(config)
    cfg = config_json.make_config_json(
        config.to_dict(), step=0, version="0", with_discriminator=False
    )
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(cfg))
    g = nets["generator"][1]
    tensors = convert.flax_to_torch("generator", cfg["generator"], g.params, g.stats)
    convert.save_safetensors(tensors, tmp_path / "model" / "generator.safetensors")

    model = inference.load(tmp_path / "model", "cpu")
    _, sketch, hints = _write_inputs(tmp_path, "s", (32, 64))
    with pytest.raises(InputError, match="trained without colour hints .*drop --hints"):
        inference.colorize_files(model, str(sketch), str(tmp_path / "o.png"), hints=str(hints))
    (written,) = inference.colorize_files(model, str(sketch), str(tmp_path / "o.png"))
    gray = cv2.imread(str(sketch), cv2.IMREAD_GRAYSCALE)[None, ..., None]
    expected = _jax_forward(nets["generator"][0], g, gray.astype(np.float32) / 127.5 - 1)[0]
    expected = np.round((expected + 1) * 127.5)
    got = cv2.cvtColor(cv2.imread(str(written)), cv2.COLOR_BGR2RGB).astype(np.float32)
    assert got.shape == (32, 64, 3) and np.abs(got - expected).max() <= 1


def _export_random(config, folder: pathlib.Path):
    """A randomly initialised generator written as an export directory; returns its nets."""
    nets = _random_nets(config)
    cfg = config_json.make_config_json(
        config.to_dict(), step=0, version="0", with_discriminator=False
    )
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    g = nets["generator"][1]
    tensors = convert.flax_to_torch("generator", cfg["generator"], g.params, g.stats)
    convert.save_safetensors(tensors, folder / "generator.safetensors")
    return nets


def _expected_rgb(nets, sketch_path, hint_channels):
    gray = cv2.imread(str(sketch_path), cv2.IMREAD_GRAYSCALE)[None, ..., None]
    x = np.concatenate([gray, hint_channels[None]], axis=-1).astype(np.float32) / 127.5 - 1
    g = nets["generator"]
    return np.round((_jax_forward(g[0], g[1], x)[0] + 1) * 127.5)


def _read_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32)


@pytest.mark.parametrize("method", ["points", "strokes", "palette"])
def test_colorize_builds_each_hint_kind_as_training_does(tiny_config, tmp_path, method):
    config = _config(tiny_config, **(ARCHS["none"] | dict(hints=method)))
    nets = _export_random(config, tmp_path / "model")
    model = inference.load(tmp_path / "model", "cpu")
    assert model.hints == method
    _, sketch, _ = _write_inputs(tmp_path, "s", (32, 48))

    if method == "palette":  # a reference image of another size, through the same function
        hints = tmp_path / "reference.png"
        reference = sources.SyntheticCartoonSource(1, (40, 56), seed=4)[0]
        cv2.imwrite(str(hints), cv2.cvtColor(reference, cv2.COLOR_RGB2BGR))
        expected = hints_lib.render_palette(hints_lib.palette_colors(reference), (32, 48))
    else:  # a drawing on white paper: coloured pixels are hints, white is "no hint"
        drawing = np.full((32, 48, 3), 255, np.uint8)
        drawing[3:6, 4:7] = (200, 30, 40)
        cv2.line(drawing, (10, 20), (40, 25), (20, 90, 240), 3)
        hints = tmp_path / "drawing.png"
        cv2.imwrite(str(hints), cv2.cvtColor(drawing, cv2.COLOR_RGB2BGR))
        expected = np.zeros((32, 48, 4), np.uint8)
        hinted = (drawing < 255).any(axis=-1)
        expected[hinted] = np.concatenate([drawing[hinted], np.full((hinted.sum(), 1), 255)], -1)
        np.testing.assert_array_equal(hints_lib.hints_from_drawing(drawing), expected)
    (written,) = inference.colorize_files(model, str(sketch), str(tmp_path / "o.png"), hints=hints)
    got = _read_rgb(written)
    assert got.shape == (32, 48, 3)
    assert np.abs(got - _expected_rgb(nets, sketch, expected)).max() <= 1
    if method != "palette":  # the same drawing on transparent paper (alpha 0 is white paper)
        rgba = np.concatenate([drawing, np.full((32, 48, 1), 255, np.uint8)], axis=-1)
        rgba[(drawing == 255).all(axis=-1)] = (0, 0, 0, 0)
        transparent = tmp_path / "transparent.png"
        cv2.imwrite(str(transparent), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
        (written,) = inference.colorize_files(
            model, str(sketch), str(tmp_path / "t.png"), hints=transparent
        )
        np.testing.assert_array_equal(_read_rgb(written), got)
    if method == "palette":
        with pytest.raises(InputError, match="--hint_points needs a model trained with point"):
            inference.colorize_files(model, str(sketch), str(tmp_path), hint_points="1,2,#ffffff")
        return

    # --hint_points: each point a 3x3 (or --point_size) square, rendered like a training patch.
    points = "5,4,#c81e28; 47,31,#1e5af0"
    for size in (3, 1):
        (written,) = inference.colorize_files(
            model, str(sketch), str(tmp_path / "p.png"), hint_points=points, point_size=size
        )
        clicks = [(5, 4, (200, 30, 40)), (47, 31, (30, 90, 240))]
        expected = hints_lib.points_from_clicks(clicks, (32, 48), size)
        # Squares at the border are moved inside, as training keeps its patches inside.
        assert (expected[..., 3] == 255).sum() == 2 * size * size
        assert np.abs(_read_rgb(written) - _expected_rgb(nets, sketch, expected)).max() <= 1
    with pytest.raises(InputError, match="--hint_points 48,3 is outside sketch .*48x32"):
        inference.colorize_files(
            model, str(sketch), str(tmp_path / "x.png"), hint_points="48,3,#000000"
        )
    with pytest.raises(InputError, match="pass --hints IMAGE, a drawing .*or --hint_points"):
        inference.colorize_files(model, str(sketch), str(tmp_path / "o.png"))


def test_colorize_scales_hint_points_with_size(tiny_config, tmp_path):
    config = _config(tiny_config, **(ARCHS["none"] | dict(hints="points")))
    _export_random(config, tmp_path / "model")
    model = inference.load(tmp_path / "model", "cpu")
    _, sketch, _ = _write_inputs(tmp_path, "s", (32, 48))
    # (47, 31) in the 48x32 sketch is the bottom-right pixel of the 96x64 working size too.
    got = inference.point_hint_channels(
        "points",
        [(47, 31, (1, 2, 3))],
        sketch_path=sketch,
        original_hw=(32, 48),
        model_hw=(64, 96),
    )
    assert (got[..., 3] == 255).sum() == 9 and got[63, 95, 3] == 255 and got[61, 93, 3] == 255
    (written,) = inference.colorize_files(
        model, str(sketch), str(tmp_path / "o.png"), hint_points="47,31,#010203", size=64
    )
    assert cv2.imread(str(written)).shape == (64, 96, 3)


# ---------------------------------------------------------------------------------------------
# colorize reads user images with the training decoder (jaxcolor.data.decode)


def _colorize_one(model, sketch, out, **kwargs):
    (written,) = inference.colorize_files(model, str(sketch), str(out), **kwargs)
    return _read_rgb(written)


def _write_pil(image: Image.Image, path: pathlib.Path, **save_kwargs) -> pathlib.Path:
    image.save(path, **save_kwargs)
    return path


@pytest.mark.parametrize("orientation", [6, 8])
def test_colorize_applies_exif_orientation(tiny_config, tmp_path, orientation):
    # A phone-style file: the pixels stored rotated, EXIF says how to show them upright.
    config = _config(tiny_config, **ARCHS["instance"])  # data.hints = "none"
    _export_random(config, tmp_path / "model")
    model = inference.load(tmp_path / "model", "cpu")
    _, upright, _ = _write_inputs(tmp_path, "upright", (32, 48))
    stored = Image.open(upright).transpose(
        Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270
    )
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    rotated = _write_pil(stored, tmp_path / "rotated.png", exif=exif)
    assert stored.size == (32, 48)  # (width, height): stored on its side
    np.testing.assert_array_equal(
        decode_lib.decode(rotated.read_bytes()), decode_lib.decode(upright.read_bytes())
    )

    got = _colorize_one(model, rotated, tmp_path / "from_rotated.png")
    assert got.shape == (32, 48, 3)  # the upright size, as training sees the file
    np.testing.assert_array_equal(got, _colorize_one(model, upright, tmp_path / "o.png"))


def test_colorize_decodes_cmyk_as_training_does(tiny_config, tmp_path):
    config = _config(tiny_config, **ARCHS["instance"])  # data.hints = "none"
    _export_random(config, tmp_path / "model")
    model = inference.load(tmp_path / "model", "cpu")
    color, _, _ = _write_inputs(tmp_path, "s", (32, 48))
    cmyk = _write_pil(Image.fromarray(color).convert("CMYK"), tmp_path / "cmyk.jpg")
    assert Image.open(cmyk).mode == "CMYK"
    # What training makes of the file, stored losslessly as RGB (OpenCV's own CMYK conversion
    # rounds differently, up to one level per channel).
    trained_rgb = decode_lib.decode(cmyk.read_bytes())
    rgb = tmp_path / "as_training.png"
    cv2.imwrite(str(rgb), cv2.cvtColor(trained_rgb, cv2.COLOR_RGB2BGR))

    got = _colorize_one(model, cmyk, tmp_path / "from_cmyk.png")
    np.testing.assert_array_equal(got, _colorize_one(model, rgb, tmp_path / "o.png"))
