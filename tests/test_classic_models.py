"""Classic U-Net (scribble seed), non-square image sizes, the sketch extractor and
data.sketch='model:DIR', scribble hints; export parity of the classic U-Net."""

import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
from conftest import REPO, load_config
from flax import nnx
from torch import nn

from jaxcolor import bench, inference, parallel
from jaxcolor.core.errors import ConfigError, InputError
from jaxcolor.core.image_size import hw, image_hw
from jaxcolor.data import crop, pipeline, schema
from jaxcolor.data import hints as hints_lib
from jaxcolor.data.hints import condition_channels
from jaxcolor.evaluation.fixed_batch import jit_eval_step
from jaxcolor.export import config_json, exporter, torch_models
from jaxcolor.nets import convert
from jaxcolor.nets.build import build_generator
from jaxcolor.nets.classic_unet.flax import UpConv2x2
from jaxcolor.nets.inputs import model_inputs, sketch_from_color
from jaxcolor.nets.layers import count_params
from jaxcolor.run import benchmark
from jaxcolor.run.loop import train_and_evaluate
from jaxcolor.training import config_checks, sketcher
from jaxcolor.training import frozen as frozen_lib
from jaxcolor.training.state import NetState, create_train_state
from jaxcolor.training.step import jit_train_step

TOL = 1e-4
torch.set_num_threads(2)


# ---------------------------------------------------------------------------------------------
# The UNet of the UAN anime-style image coloriser (vrobbin3247/UAN-based-anime-style-image-
# coloriser on GitHub), verbatim: its state_dict names are the contract.


class SeedUNet(nn.Module):
    def __init__(self, in_channels=4, out_channels=3):
        super().__init__()

        def conv_block(in_ch, out_ch):
            return nn.Sequential(
                nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
            )

        self.encoder1 = conv_block(in_channels, 64)
        self.encoder2 = conv_block(64, 128)
        self.encoder3 = conv_block(128, 256)
        self.encoder4 = conv_block(256, 512)
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = conv_block(512, 1024)
        self.upconv4 = nn.ConvTranspose2d(1024, 512, kernel_size=2, stride=2)
        self.decoder4 = conv_block(1024, 512)
        self.upconv3 = nn.ConvTranspose2d(512, 256, kernel_size=2, stride=2)
        self.decoder3 = conv_block(512, 256)
        self.upconv2 = nn.ConvTranspose2d(256, 128, kernel_size=2, stride=2)
        self.decoder2 = conv_block(256, 128)
        self.upconv1 = nn.ConvTranspose2d(128, 64, kernel_size=2, stride=2)
        self.decoder1 = conv_block(128, 64)
        self.final_conv = nn.Conv2d(64, out_channels, kernel_size=1)

    def forward(self, x):
        e1 = self.encoder1(x)
        e2 = self.encoder2(self.pool(e1))
        e3 = self.encoder3(self.pool(e2))
        e4 = self.encoder4(self.pool(e3))
        b = self.bottleneck(self.pool(e4))
        d4 = self.upconv4(b)
        d4 = self.decoder4(torch.cat([d4, e4], dim=1))
        d3 = self.upconv3(d4)
        d3 = self.decoder3(torch.cat([d3, e3], dim=1))
        d2 = self.upconv2(d3)
        d2 = self.decoder2(torch.cat([d2, e2], dim=1))
        d1 = self.upconv1(d2)
        d1 = self.decoder1(torch.cat([d1, e1], dim=1))
        return torch.tanh(self.final_conv(d1))


# ---------------------------------------------------------------------------------------------
# Helpers


def _abstract_generator(config, in_channels=None):
    """(graph, NetState of ShapeDtypeStructs) of the config's generator; nothing allocated."""
    if in_channels is None:
        in_channels = condition_channels(config)
    model = nnx.eval_shape(
        lambda: build_generator(
            config.model.generator,
            in_channels=in_channels,
            dtype="float32",
            rngs=nnx.Rngs(0),
        )
    )
    graph, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    return graph, NetState(nnx.to_pure_dict(params), nnx.to_pure_dict(stats), None)


def _unit_scale(net_state, seed):
    """Random weights with O(1) activations and non-trivial BatchNorm statistics."""
    rng = np.random.default_rng(seed)

    def draw(path, x):
        name = str(path[-1].key)
        if name == "kernel":
            fan_in = int(np.prod(x.shape[:-1]))
            return rng.normal(0, (2 / fan_in) ** 0.5, x.shape).astype(np.float32)
        if name in ("scale", "var"):
            return rng.uniform(0.5, 1.5, x.shape).astype(np.float32)
        return rng.normal(0, 0.2, x.shape).astype(np.float32)

    return net_state.replace(
        params=jax.tree_util.tree_map_with_path(draw, net_state.params),
        stats=jax.tree_util.tree_map_with_path(draw, net_state.stats),
    )


def _jax_forward(graph, net_state, x):
    fn = jax.jit(lambda p, s, x: nnx.merge(graph, p, s)(x, train=False))
    return np.asarray(fn(net_state.params, net_state.stats, jnp.asarray(x)))


def _torch_forward(module, x):
    with torch.no_grad():
        y = module(torch.from_numpy(np.array(x)).permute(0, 3, 1, 2))
    return y.permute(0, 2, 3, 1).numpy()


def _torch_generator(config, net_state):
    arch = config_json.architectures(config.to_dict())["generator"]
    tensors = convert.flax_to_torch("generator", arch, net_state.params, net_state.stats)
    module = torch_models.build("generator", arch)
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
    return module.eval()


def _host_batch(config, n, *, train=False):
    """n pipeline examples (validation transform) of the config's own sources, stacked."""
    source = pipeline.make_sources(config)[1 if not train else 0]
    with config.unlocked():
        size = config.eval_batch_size
        config.eval_batch_size = n
    batch = pipeline.validation_batch(config, source)
    with config.unlocked():
        config.eval_batch_size = size
    return batch


def _small_classic(config, *, norm="none", dropout=0.0, ngf=4, num_downs=2):
    config.model.generator.update(
        name="classic_unet", norm=norm, dropout=dropout, ngf=ngf, num_downs=num_downs
    )
    return config


def _scribbles(size=(32, 48), batch=8):
    """configs/unet_scribbles.py at test size (narrow, 2 poolings)."""
    c = load_config("unet_scribbles")
    c.update(image_size=size, batch_size=batch, eval_batch_size=batch, num_steps=3)
    c.update(log_every=1, eval_every=3, checkpoint_every=3, compute_dtype="float32")
    c.data.update(num_synthetic=32, num_workers=0)
    c.optimizer.learning_rate = 1e-3  # visible progress in a dozen steps
    return _small_classic(c, ngf=8)


def _train_steps(config, steps, batch_host, devices=-1, seed=0):
    """`steps` jitted train steps on one fixed batch from He-normal weights (`_unit_scale`);
    -> (state, nets, [g_loss], mesh)."""
    mesh = parallel.create_mesh(devices)
    created = {}

    def init():
        state, created["nets"] = create_train_state(config, mesh=mesh)
        return state

    # create_train_state's shapes filled in numpy (Adam's moments start at zero as optax's):
    # building the networks eagerly takes longer than the steps on a busy CPU.
    state = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), jax.eval_shape(init))
    state = state.replace(g=_unit_scale(state.g, seed), rng=np.asarray([0, seed], np.uint32))
    state = jax.device_put(state, parallel.replicated(mesh))
    # The frozen sketch model (data.sketch = "model:DIR") holds real arrays, not shapes.
    nets, frozen = created["nets"], frozen_lib.load(config, parallel.replicated(mesh))
    step = jit_train_step(nets, config, mesh)
    batch = parallel.to_global(batch_host, parallel.batch_sharding(mesh))
    losses = []
    for _ in range(steps):
        state, metrics = step(state, frozen, batch)
        losses.append(float(metrics["g_loss"]))
    return state, nets, losses, mesh


# ---------------------------------------------------------------------------------------------
# Parameter counts at full size (eval_shape: nothing allocated)


def test_full_size_parameter_counts_match_the_config_docstrings():
    scribbles = load_config("unet_scribbles")
    assert condition_channels(scribbles) == 4  # sketch + RGB scribbles, as the UAN coloriser
    assert image_hw(scribbles) == (160, 256)
    extractor = load_config("sketch_extractor")
    assert condition_channels(extractor) == 3
    for config, expected in ((scribbles, 31_032_451), (extractor, 31_037_633)):
        config_checks.validate(config)
        model = nnx.eval_shape(
            lambda c=config: build_generator(
                c.model.generator,
                in_channels=condition_channels(c),
                dtype=c.compute_dtype,
                rngs=nnx.Rngs(0),
            )
        )
        assert count_params(model) == expected
        assert f"{expected:,}" in (REPO / "configs" / f"{_name(config)}.py").read_text()


def _name(config):
    return "sketch_extractor" if config.task == "sketch" else "unet_scribbles"


def test_the_seed_unet_loads_our_export_strictly_and_computes_the_same():
    # Full width (31M parameters, random), tiny image: the names and shapes are the UAN coloriser's.
    config = load_config("unet_scribbles")
    graph, s = _abstract_generator(config)
    s = _unit_scale(s, 0)
    arch = config_json.architectures(config.to_dict())["generator"]
    tensors = convert.flax_to_torch("generator", arch, s.params, s.stats)
    seed = SeedUNet()
    seed.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    ours = _torch_generator(config, s)
    x = torch.rand(1, 4, 16, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(seed.eval()(x), ours(x), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# Non-square image sizes


def test_image_size_accepts_an_int_or_a_pair_and_names_the_key():
    assert hw(64) == (64, 64) and hw((32, 48)) == (32, 48) and hw([32, 48]) == (32, 48)
    assert hw((40,)) == (40, 40)  # --config.image_size=40 on a pair-valued field
    assert hw(np.int64(8)) == (8, 8)
    for bad in ((1, 2, 3), "64", (32, 0), 2.5, None, True):
        with pytest.raises(ConfigError, match="image_size"):
            hw(bad)


@pytest.mark.parametrize(
    "name, override, expected",
    [
        ("tiny", "--config.image_size=48", (48, 48)),
        ("tiny", "--config.image_size=(32, 64)", (32, 64)),
        ("unet_scribbles", "--config.image_size=64", (64, 64)),
        ("unet_scribbles", "--config.image_size=(96,128)", (96, 128)),
    ],
)
def test_command_line_overrides_both_forms(name, override, expected):
    config = bench.load_config(f"configs/{name}.py", [override])
    assert image_hw(config) == expected


def test_non_square_config_checks_name_image_size(tiny_config):
    tiny_config.image_size = (32, 48)  # 48 is not a multiple of 2**5
    with pytest.raises(ConfigError, match=r"image_size=32x48 .* multiple of 2\*\*model.*num_downs"):
        config_checks.validate(tiny_config)
    tiny_config.image_size = (32, 64)
    config_checks.validate(tiny_config)
    tiny_config.update(image_size=(8, 64))
    tiny_config.model.generator.num_downs = 3
    with pytest.raises(ConfigError, match="image_size=8x64 is too small for a PatchGAN"):
        config_checks.validate(tiny_config)


def test_crop_resize_covers_the_crop_for_any_aspect_ratio():
    rng = np.random.default_rng(0)
    for shape in ((100, 60, 3), (40, 300, 3), (64, 64, 4)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        for size in ((32, 48), (48, 32), 40):
            for r in (None, np.random.default_rng(1)):
                out = crop.crop_resize(image, size, r)
                assert out.shape == (*hw(size), shape[2])
    # Evaluation: the centre crop of an image already scaled to cover exactly (no margin).
    image = np.arange(64 * 96 * 3, dtype=np.uint8).reshape(64, 96, 3)
    np.testing.assert_array_equal(crop.crop_resize(image, (64, 48), None), image[:, 24:72])


def test_pipeline_batches_and_the_grid_are_height_by_width(tiny_config, tmp_path):
    import cv2

    from jaxcolor import summary

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(((50, 90), (120, 70), (64, 64))):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    tiny_config.update(image_size=(32, 64), eval_batch_size=8)
    tiny_config.data.update(source=f"folder:{folder}", val_fraction=0.0, hints="strokes")
    train, val = pipeline.make_sources(tiny_config)
    batch = next(iter(pipeline.train_dataset(tiny_config, train)))
    pipeline.pop_skipped(batch)
    shapes = {k: v.shape for k, v in batch.items()}
    assert shapes == {
        "color": (8, 32, 64, 3),
        "sketch": (8, 32, 64, 1),
        "hints": (8, 32, 64, 4),
    }
    val_batch = pipeline.validation_batch(tiny_config, val)
    assert val_batch["color"].shape == (8, 32, 64, 3)
    grid = summary.image_grid([val_batch["sketch"], val_batch["hints"], val_batch["color"]], 2)
    assert grid.shape == (2 * 34 + 2, 3 * 66 + 2, 3)
    # The synthetic source draws at the pair too, and the bench's batch follows.
    tiny_config.data.source = "synthetic"
    assert pipeline.make_sources(tiny_config)[0][0].shape == (32, 64, 3)
    shapes = schema.shapes(tiny_config)
    assert {k: shape for k, (shape, _) in shapes.items()} == {
        "color": (8, 32, 64, 3),
        "sketch": (8, 32, 64, 1),
        "hints": (8, 32, 64, 4),
    }
    assert schema.synthetic(tiny_config, processes=1)["hints"].shape == (8, 32, 64, 4)


# ---------------------------------------------------------------------------------------------
# Classic U-Net


def test_classic_unet_shapes_range_and_upsample_impls_agree():
    kwargs = dict(ngf=4, num_downs=3, norm="batch", dropout=0.5)
    config = ml_collections.ConfigDict({"model": {"generator": _cfg("subpixel", **kwargs)}})
    graph_a, s = _abstract_generator(config, in_channels=4)
    s = _unit_scale(s, 0)
    config.model.generator.upsample_impl = "conv_transpose"
    graph_b, _ = _abstract_generator(config, in_channels=4)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 16, 40, 4)).astype(np.float32)
    ya, yb = _jax_forward(graph_a, s, x), _jax_forward(graph_b, s, x)
    assert ya.shape == (2, 16, 40, 3) and ya.dtype == np.float32
    assert np.abs(ya).max() <= 1.0 and np.abs(ya).max() > 0.5
    np.testing.assert_allclose(ya, yb, atol=1e-5)

    # Dropout is on in training only.
    @jax.jit
    def train(params, stats, key):
        model = nnx.merge(graph_a, params, stats)
        return model(jnp.asarray(x), train=True, rngs=nnx.Rngs(dropout=key))

    one, two = (train(s.params, s.stats, jax.random.key(k)) for k in (1, 2))
    assert not np.allclose(one, two)
    # The 2x2 stride-2 up-conv: matmul + depth-to-space == lax.conv_transpose, with gradients.
    z = jax.random.normal(jax.random.key(2), (2, 3, 5, 6))
    up = [
        UpConv2x2(6, 5, impl=i, dtype=jnp.float32, rngs=nnx.Rngs(3))
        for i in ("auto", "conv_transpose")
    ]
    value_grad = nnx.jit(nnx.value_and_grad(lambda m, z: jnp.sum(m(z) ** 2)))
    (va, ga), (vb, gb) = (value_grad(m, z) for m in up)
    np.testing.assert_allclose(va, vb, rtol=1e-5)
    np.testing.assert_allclose(ga.kernel[...], gb.kernel[...], rtol=1e-5, atol=1e-5)


def _cfg(impl, **kwargs):
    return ml_collections.ConfigDict(dict(name="classic_unet", upsample_impl=impl, **kwargs))


@pytest.mark.parametrize("norm, dropout", [("none", 0.0), ("batch", 0.5)])
def test_classic_unet_jax_and_pytorch_agree_random_and_trained(norm, dropout):
    config = _scribbles()
    _small_classic(config, norm=norm, dropout=dropout, ngf=6, num_downs=3)
    graph, s = _abstract_generator(config)
    random = _unit_scale(s, 1)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 48, 4)).astype(np.float32)
    real = np.asarray(model_inputs(_host_batch(config, 4), config)[0])
    for net_state in (random,):
        for inputs in (x, real):
            expected = _jax_forward(graph, net_state, inputs)
            got = _torch_forward(_torch_generator(config, net_state), inputs)
            assert np.abs(expected - got).max() <= TOL
    assert np.abs(_jax_forward(graph, random, x)).max() > 0.5  # the check has teeth

    state, _, losses, _ = _train_steps(config, 3, _host_batch(config, 8, train=True), devices=1)
    trained = jax.device_get(state.g)
    assert np.isfinite(losses).all()
    for inputs in (x, real):
        expected = _jax_forward(graph, trained, inputs)
        got = _torch_forward(_torch_generator(config, trained), inputs)
        assert np.abs(expected - got).max() <= TOL


def test_unet_scribbles_trains_on_non_square_images():
    config = _scribbles()
    config_checks.validate(config)
    batch = _host_batch(config, 8, train=True)
    assert batch["hints"].shape == (8, 32, 48, 3)  # RGB scribbles on white paper
    state, nets, losses, mesh = _train_steps(config, 12, batch)
    assert np.isfinite(losses).all() and "d_loss" not in losses
    assert losses[-1] < 0.9 * losses[0], losses
    pred, metrics = jit_eval_step(nets, mesh, config)(
        state, {}, parallel.to_global(batch, parallel.batch_sharding(mesh))
    )
    assert pred.shape == (8, 32, 48, 3) and np.isfinite(float(metrics["l1"]))
    # The bench's analytic count of the forward agrees with XLA's count of the compiled one.
    report = benchmark.analytic_step_flops(config)
    graph, g = _abstract_generator(config)
    forward = jax.jit(lambda p, x: nnx.merge(graph, p, g.stats)(x, train=False))
    compiled = forward.lower(g.params, jax.ShapeDtypeStruct((1, 32, 48, 4), jnp.float32)).compile()
    xla = benchmark.xla_flops(compiled)
    assert report["d_forward"] == 0
    # (XLA skips the taps that fall on the zero padding of the 3x3 convs: ~5% of them on
    # these 8x12 .. 32x48 maps, 0.95 measured; well under 1% at 160x256.)
    assert xla is None or 0.9 < xla / report["g_forward"] <= 1.0, (xla, report)


def test_unet_scribbles_trains_without_hints():
    """Automatic colorization (data.hints='none'): the classic U-Net reads the sketch alone."""
    config = _scribbles()
    config.data.hints = "none"
    config_checks.validate(config)
    batch = _host_batch(config, 8, train=True)
    assert "hints" not in batch  # no zero-channel array: nothing to send between processes
    _, _, losses, _ = _train_steps(config, 12, batch)
    assert np.isfinite(losses).all() and losses[-1] < 0.9 * losses[0], losses


# ---------------------------------------------------------------------------------------------
# Scribble hints: training and colorize build the same 3 channels


def test_scribbles_are_the_strokes_on_white_paper_and_drawings_round_trip():
    rng_image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for seed in range(6):
        strokes = hints_lib.make_hints("strokes", rng_image, np.random.default_rng(seed))
        scribbles = hints_lib.make_hints("scribbles", rng_image, np.random.default_rng(seed))
        mask = strokes[..., 3] == 255
        assert scribbles.shape == (48, 64, 3)
        np.testing.assert_array_equal(scribbles[~mask], 255)
        kept = mask & ~(strokes[..., :3] > hints_lib.PAPER_LEVEL).all(-1)
        np.testing.assert_array_equal(scribbles[kept], strokes[kept][:, :3])
        # The scribble image is itself a drawing on white paper: colorize reads it back as is.
        np.testing.assert_array_equal(hints_lib.scribbles_from_drawing(scribbles), scribbles)
        got = inference.hint_channels_for(
            "scribbles",
            _write_png(scribbles),
            sketch_path=_write_png(scribbles),
            original_hw=(48, 64),
            model_hw=(48, 64),
        )
        np.testing.assert_array_equal(got, scribbles)
    clicks = inference.point_hint_channels(
        "scribbles",
        [(3, 4, (10, 20, 30))],
        sketch_path=None,
        original_hw=(48, 64),
        model_hw=(48, 64),
    )
    assert clicks.shape == (48, 64, 3) and tuple(clicks[4, 3]) == (10, 20, 30)
    assert (clicks == 255).all(-1).sum() == 48 * 64 - 9


def _write_png(rgb):
    import pathlib
    import tempfile

    import cv2

    path = pathlib.Path(tempfile.mkdtemp()) / "h.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


# ---------------------------------------------------------------------------------------------
# Sketch extractor (task="sketch") and data.sketch = "model:DIR"


def _extractor(size=(32, 48)):
    c = load_config("sketch_extractor")
    c.update(image_size=size, batch_size=8, eval_batch_size=8, num_steps=3, compute_dtype="float32")
    c.update(log_every=1, eval_every=3, checkpoint_every=3)
    c.data.update(num_synthetic=32, num_workers=0)
    return _small_classic(c, norm="batch", dropout=0.5, ngf=4, num_downs=2)


@pytest.fixture(scope="module")
def sketch_export(tmp_path_factory):
    """A tiny extractor trained 3 steps on non-square images and exported."""
    workdir = tmp_path_factory.mktemp("sketcher")
    config = _extractor()
    state = jax.device_get(train_and_evaluate(config, str(workdir)))
    out = workdir / "export"
    exporter.export(str(workdir), str(out))
    return config, state, out


def test_sketch_task_trains_and_exports_rgb_in_sketch_out(sketch_export):
    config, state, out = sketch_export
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["task"] == "sketch"
    assert cfg["inputs"]["layout"] == [{"name": "color", "channels": 3}]
    assert cfg["generator"]["in_channels"] == 3 and cfg["output"]["channels"] == 1
    assert cfg["inputs"]["image_size"] == [32, 48] and cfg["inputs"]["size_multiple"] == 4
    # condition = the colour image, target = its sketch
    batch = _host_batch(config, 8)
    condition, target = model_inputs(batch, config)
    assert condition.shape == (8, 32, 48, 3) and target.shape == (8, 32, 48, 1)
    # The export reproduces the trained extractor (BatchNorm + dropout network, eval mode).
    module, _ = torch_models.load(out)
    graph = _abstract_generator(config)[0]
    x = np.asarray(condition)
    assert np.abs(_jax_forward(graph, state.g, x) - _torch_forward(module, x)).max() <= TOL
    with pytest.raises(InputError, match="sketch extractor"):
        inference.load(str(out), "cpu")
    # Loss decreases over a short run (fixed batch).
    config.optimizer.learning_rate = 1e-3
    _, _, losses, _ = _train_steps(config, 10, _host_batch(config, 8, train=True))
    assert losses[-1] < losses[0], losses


def test_model_sketches_train_a_colorizer_without_hints(sketch_export, tmp_path):
    extractor_config, extractor_state, out = sketch_export
    config = _scribbles()
    config.data.update(sketch=f"model:{out}", hints="none")  # automatic colorization
    config_checks.validate(config)
    host = _host_batch(config, 8)
    assert "sketch" not in host and "hints" not in host

    state = train_and_evaluate(config, str(tmp_path / "color"))
    assert int(state.step) == 3

    # The colorizer's batch sketch is the extractor's output on the same colours.
    sketch_model = sketcher.load_sketcher(config)
    condition, _ = model_inputs(host, config, sketch_model=sketch_model)
    assert condition.shape == (8, 32, 48, 1)
    graph = _abstract_generator(extractor_config)[0]
    color = np.asarray(host["color"], np.float32) / 127.5 - 1
    jax_sketch = _jax_forward(graph, extractor_state.g, color)
    quantized = np.round((jax_sketch + 1) * 127.5) / 127.5 - 1
    diff = np.abs(np.asarray(condition) - quantized)
    assert diff.max() <= 1 / 127.5 + 1e-6 and (diff > 1e-6).mean() < 1e-3
    module, _ = torch_models.load(out)
    assert np.abs(_torch_forward(module, color) - jax_sketch).max() <= TOL
    raw = sketch_from_color(sketch_model, jnp.asarray(color), quantize=False)
    assert np.abs(np.asarray(raw) - jax_sketch).max() <= 1e-5

    # A short run on a fixed batch learns.
    config.optimizer.learning_rate = 1e-3
    _, _, losses, _ = _train_steps(config, 8, _host_batch(config, 8, train=True))
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses

    # The colorizer exports without the extractor's files (they are not part of its state),
    # and its config.json names the sketch method it was trained with.
    moved = tmp_path / "moved"
    pathlib.Path(str(out)).rename(moved)
    try:
        exporter.export(str(tmp_path / "color"), str(tmp_path / "color_export"))
    finally:
        moved.rename(out)
    cfg = json.loads((tmp_path / "color_export" / "config.json").read_text())
    assert cfg["inputs"]["layout"][0] == {"name": "sketch", "channels": 1, "method": f"model:{out}"}


def test_model_sketch_errors_name_data_sketch(sketch_export, tmp_path):
    _, _, out = sketch_export
    config = _scribbles()

    def fails(match, sketch, **updates):
        config.data.sketch = sketch
        config.update(**updates)
        with pytest.raises(ConfigError, match=match):
            config_checks.validate(config)

    fails(r"data.sketch='model:.*missing'.*does not exist", f"model:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    fails(r"data.sketch=.*config.json is missing", f"model:{tmp_path / 'empty'}")
    cfg = json.loads((out / "config.json").read_text())
    cfg["task"] = "colorize"
    (tmp_path / "colorizer").mkdir()
    (tmp_path / "colorizer" / "config.json").write_text(json.dumps(cfg))
    fails(
        r"data.sketch=.*is a 'colorize' export .*not a sketch extractor",
        f"model:{tmp_path / 'colorizer'}",
    )
    config.model.generator.num_downs = 1
    fails(
        r"data.sketch=.*multiples of 4, but image_size=30x48", f"model:{out}", image_size=(30, 48)
    )
    extractor = _extractor()
    extractor.data.sketch = f"model:{out}"
    with pytest.raises(ConfigError, match="task='sketch' .*cannot be its own target"):
        config_checks.validate(extractor)
