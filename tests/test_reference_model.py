"""Reference-guided colorizer (configs/reference.py): sizes, training, reference use, export."""

import json

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import REPO, load_config
from flax import nnx

from jaxcolor import inference, parallel
from jaxcolor.core.errors import ConfigError, InputError
from jaxcolor.data import crop, pipeline
from jaxcolor.data.hints import condition_channels
from jaxcolor.evaluation.fixed_batch import jit_eval_step
from jaxcolor.export import config_json, exporter, torch_models
from jaxcolor.nets import convert, export_format
from jaxcolor.nets.build import build_discriminator, build_generator
from jaxcolor.nets.inputs import model_inputs
from jaxcolor.nets.layers import count_params
from jaxcolor.nets.reference.flax import downsample
from jaxcolor.training import config_checks, losses
from jaxcolor.training import frozen as frozen_lib
from jaxcolor.training.state import create_train_state
from jaxcolor.training.step import jit_train_step

TOL = 1e-4
torch.set_num_threads(2)

# Full size (256 px, data.hints="none": 1 input channel), as stated in configs/reference.py.
FULL_SIZE_PARAMS = {
    ("generator", 1): 58_167_305,
    ("generator", 4): 57_321_993,
    ("discriminator", 1): 8_297_283,
}


def _count(config, net: str) -> int:
    cin = condition_channels(config)
    if net == "generator":
        cfg, build, channels = config.model.generator, build_generator, cin
    else:
        cfg, build, channels = config.model.discriminator, build_discriminator, cin + 3
    model = nnx.eval_shape(
        lambda: build(cfg, in_channels=channels, dtype="float32", rngs=nnx.Rngs(0))
    )
    return count_params(model)


@pytest.mark.parametrize("net,codes", list(FULL_SIZE_PARAMS))
def test_full_size_parameter_counts(net, codes):
    config = load_config("reference")
    assert config.image_size == 256 and config.data.hints == "none"
    config.model.generator.style_codes = codes
    config_checks.validate(config)
    count = _count(config, net)
    assert count == FULL_SIZE_PARAMS[(net, codes)]
    doc = (REPO / "configs" / "reference.py").read_text()
    assert f"{count:,}" in doc, "the config docstring states the count"


def small_config(hints="none", style_codes=1):
    """configs/reference.py at 32 px with narrow networks (3-scale D with 1-layer PatchGANs)."""
    c = load_config("reference")
    c.image_size = 32
    c.batch_size = 8
    c.eval_batch_size = 8
    c.compute_dtype = "float32"
    c.data.num_synthetic = 64
    c.data.num_workers = 0
    c.data.hints = hints
    c.model.generator.update(num_downs=5, ngf=8, style_width=8, style_dim=16)
    c.model.generator.style_codes = style_codes
    c.model.discriminator.update(ndf=8, n_layers=1)
    c.optimizer.learning_rate = 1e-3
    config_checks.validate(c)
    return c


def _pipeline_batches(config):
    """One training batch and the validation batch, from the real Grain pipeline."""
    train_source, val_source = pipeline.make_sources(config)
    train = next(iter(pipeline.train_dataset(config, train_source)))
    pipeline.pop_skipped(train)
    return train, pipeline.validation_batch(config, val_source)


@pytest.mark.parametrize("hints,codes,with_vgg", [("none", 1, True), ("blur", 4, False)])
def test_reference_config_trains_and_uses_the_reference(hints, codes, with_vgg, request):
    """configs/reference.py (multi-scale outputs on; given a VGG-19 file, its perceptual and
    style losses too) trains: every loss falls; the prediction follows the reference; the
    trained networks, multi-scale heads included, export with parity."""
    config = small_config(hints, codes)
    losses_used = ["g_l1", "g_aux1", "g_aux2", "g_loss"]
    if with_vgg:  # random VGG-19 weights, written by the fixture as torchvision's .pth
        paper = load_config("reference", f"vgg={request.getfixturevalue('vgg19_pth')['pth']}")
        assert (paper.loss.perceptual_weight, paper.loss.style_weight) == (0.01, 50.0)
        config.loss.update(
            perceptual_weight=paper.loss.perceptual_weight,
            style_weight=paper.loss.style_weight,
            vgg_weights=paper.loss.vgg_weights,
            vgg_layers="relu1_1,relu2_1,relu3_1",  # 32 px: the shallow layers keep it short
        )
        config_checks.validate(config)
        losses_used += ["g_perceptual", "g_style"]
    assert config.model.generator.num_aux == 2 and config.loss.aux_weights == (50.0, 25.0)
    train, val = _pipeline_batches(config)
    size = config.image_size
    for batch in (train, val):
        assert batch["reference"].shape == (8, size, size, 3)
        assert batch["reference"].dtype == np.uint8
    if hints == "none":
        assert "hints" not in train and "hints" not in val
    else:
        assert train["hints"].shape[-1] == 3
    # Training references are other views of the target; validation ones are the target.
    assert all(
        not np.array_equal(r, c) for r, c in zip(train["reference"], train["color"], strict=True)
    )
    np.testing.assert_array_equal(val["reference"], val["color"])

    mesh = parallel.create_mesh(1 if codes == 1 else -1)  # one run sharded over 8 devices
    state, nets = create_train_state(config, mesh=mesh)
    frozen = frozen_lib.load(config, parallel.replicated(mesh))
    assert nets.takes_reference
    initial = jax.device_get(state)
    step = jit_train_step(nets, config, mesh)
    batch = parallel.to_global(train, parallel.batch_sharding(mesh))
    history = []
    for _ in range(10):
        state, metrics = step(state, frozen, batch)
        history.append(jax.device_get(metrics))
    for m in history:
        assert all(np.isfinite(v) for v in m.values()), m
        assert np.ndim(m["d_loss"]) == 0 and np.ndim(m["g_loss"]) == 0
    assert ("g_style" in history[0]) == with_vgg
    for name in losses_used:
        first, last = history[0][name], np.mean([m[name] for m in history[-3:]])
        assert last < 0.9 * first, (name, first, last)

    # The prediction follows the reference: another image's reference changes it.
    evaluate = jit_eval_step(nets, mesh)
    val_global = parallel.to_global(val, parallel.batch_sharding(mesh))
    pred, _ = evaluate(state, frozen, val_global)
    assert pred.shape == (8, size, size, 3) and pred.dtype == jnp.float32
    swapped = dict(val, reference=np.roll(val["reference"], 1, axis=0))
    pred_swapped, _ = evaluate(
        state, frozen, parallel.to_global(swapped, parallel.batch_sharding(mesh))
    )
    diff = np.abs(np.asarray(pred) - np.asarray(pred_swapped)).max(axis=(1, 2, 3))
    assert (diff > 1e-3).all(), diff
    pred_again, _ = evaluate(state, frozen, val_global)
    np.testing.assert_array_equal(pred, pred_again)

    # Export parity with the briefly trained weights (BatchNorm statistics included).
    trained = jax.device_get(state)
    assert not np.array_equal(
        trained.g.params["adain"][0]["proj"]["kernel"],
        initial.g.params["adain"][0]["proj"]["kernel"],
    )
    diffs = _parity(config, nets, trained, val)
    assert max(diffs.values()) <= TOL, diffs


def test_gan_losses_take_the_mean_over_scales():
    rng = np.random.default_rng(1)
    real = [jnp.asarray(rng.normal(size=(2, s, s, 1))) for s in (6, 3, 2)]
    fake = [jnp.asarray(rng.normal(size=(2, s, s, 1))) for s in (6, 3, 2)]
    for mode in ("vanilla", "lsgan", "hinge"):
        per_scale = [losses.discriminator_loss(mode, r, f) for r, f in zip(real, fake, strict=True)]
        np.testing.assert_allclose(
            losses.discriminator_loss(mode, real, fake), np.mean(per_scale), rtol=1e-6
        )
        gen = np.mean([losses.generator_gan_loss(mode, f) for f in fake])
        np.testing.assert_allclose(losses.generator_gan_loss(mode, fake), gen, rtol=1e-6)
        prob = np.mean([losses.real_probability(mode, f) for f in fake])
        np.testing.assert_allclose(losses.real_probability(mode, fake), prob, rtol=1e-6)


def test_config_errors_name_the_key():
    config = small_config()
    config.model.generator.update(style_codes=4, num_downs=4)
    with pytest.raises(ConfigError, match="style_codes=4 .* needs model.generator.num_downs >= 5"):
        config_checks.validate(config)
    g = build_generator(
        small_config().model.generator, in_channels=1, dtype="float32", rngs=nnx.Rngs(0)
    )
    with pytest.raises(ValueError, match="needs reference="):
        g(jnp.zeros((1, 32, 32, 1)), train=False)
    config = small_config()
    config.model.discriminator.n_layers = 2  # the 1/4 scale of 32 px is 8 px: too small
    with pytest.raises(ConfigError, match="model.discriminator.num_scales=3"):
        config_checks.validate(config)


# ---------------------------------------------------------------------------------------------
# Export: PyTorch modules with the same eval-mode outputs


def _unit_scale(tree, seed):
    """Weights where activations stay O(1), and non-trivial BatchNorm statistics."""
    rng = np.random.default_rng(seed)

    def draw(path, x):
        name = str(path[-1].key)
        if name == "kernel":
            fan_in = int(np.prod(x.shape[:-1]))
            return rng.normal(0, (2 / fan_in) ** 0.5, x.shape).astype(np.float32)
        if name in ("scale", "var"):
            return rng.uniform(0.5, 1.5, x.shape).astype(np.float32)
        return rng.normal(0, 0.2, x.shape).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, tree)


def _torch_out(module, *inputs, **kwargs) -> list[np.ndarray]:
    """NHWC numpy inputs -> the module's outputs as a flat list of NHWC arrays."""
    with torch.no_grad():
        out = module(*(torch.from_numpy(np.array(a)).permute(0, 3, 1, 2) for a in inputs), **kwargs)
    if kwargs.get("return_aux"):
        out = [out[0], *out[1]]
    return [o.permute(0, 2, 3, 1).numpy() for o in (out if isinstance(out, list) else [out])]


def _parity(config, nets, state, batch) -> dict[str, float]:
    """max |JAX - PyTorch| in eval mode: the generator (two inputs; its multi-scale outputs
    too) and every scale of the D."""
    archs = config_json.architectures(config.to_dict())
    condition, color = (np.asarray(a) for a in model_inputs(batch))
    reference = batch["reference"].astype(np.float32) / 127.5 - 1.0
    cases = {
        "generator": (nets.g_graph, state.g, (condition, reference)),
        "discriminator": (nets.d_graph, state.d, (np.concatenate([condition, color], -1),)),
    }
    diffs = {}
    for net, (graph, s, inputs) in cases.items():
        model = nnx.merge(graph, s.params, s.stats)
        kwargs = {}
        if net == "generator" and config.model.generator.get("num_aux", 0):
            kwargs = {"return_aux": True}
            image, aux = model(jnp.asarray(condition), train=False, reference=reference, **kwargs)
            expected = [image, *aux]
            assert [a.shape[1] for a in aux] == [image.shape[1] // 2**k for k in (1, 2)]
        elif net == "generator":
            expected = [model(jnp.asarray(condition), train=False, reference=reference)]
        else:
            expected = model(jnp.asarray(inputs[0]), train=False)
            assert len(expected) == config.model.discriminator.num_scales
        tensors = convert.flax_to_torch(net, archs[net], s.params, s.stats, step=3)
        module = torch_models.build(net, archs[net])
        module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
        got = _torch_out(module.eval(), *inputs, **kwargs)
        assert len(got) == len(expected)
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            assert e.shape == g.shape, (net, i)
            diffs[f"{net}/{i}"] = float(np.abs(np.asarray(e) - g).max())
    return diffs


def _random_state(config):
    """(Networks, TrainState of numpy unit-scale weights); no initialiser is compiled."""
    created = {}

    def init():
        state, created["nets"] = create_train_state(config, mesh=parallel.create_mesh(1))
        return state

    shapes = jax.eval_shape(init)
    state = shapes.replace(
        g=shapes.g.replace(
            params=_unit_scale(shapes.g.params, 0), stats=_unit_scale(shapes.g.stats, 1)
        ),
        d=shapes.d.replace(
            params=_unit_scale(shapes.d.params, 2), stats=_unit_scale(shapes.d.stats, 3)
        ),
    )
    return created["nets"], state


@pytest.mark.parametrize("codes,norm", [(1, "instance"), (4, "batch")])
def test_jax_and_pytorch_agree_with_random_weights(codes, norm):
    config = small_config("blur", codes)
    config.model.generator.norm = norm
    config.model.discriminator.norm = norm
    _, val_source = pipeline.make_sources(config)
    val = pipeline.validation_batch(config, val_source)
    nets, random = _random_state(config)
    diffs = _parity(config, nets, random, val)
    assert max(diffs.values()) <= TOL, diffs
    # Unit-scale weights drive tanh well away from 0: the comparison has teeth.
    condition, _ = model_inputs(val)
    g = nnx.merge(nets.g_graph, random.g.params, random.g.stats)
    out = g(condition, train=False, reference=val["reference"].astype(np.float32) / 127.5 - 1)
    assert float(jnp.abs(out).max()) > 0.5


def test_config_json_documents_the_reference_input():
    config = small_config()
    out = config_json.make_config_json(
        config.to_dict(), step=5, version="test", with_discriminator=True
    )
    assert out["generator"]["name"] == "reference_unet"
    assert out["generator"]["style_codes"] == 1 and not out["generator"]["pix2pix_compatible"]
    assert out["inputs"]["reference"]["channels"] == 3
    assert "forward(condition, reference)" in out["inputs"]["reference"]["argument"]
    assert out["discriminator"]["num_scales"] == 3 and "list" in out["discriminator"]["output"]
    assert "2 multi-scale output heads" in out["generator"]["aux_outputs"]
    assert "return_aux=True" in out["generator"]["aux_outputs"]


def test_average_pool_downsampling_matches_pix2pixhd():
    x = np.random.default_rng(0).normal(size=(2, 9, 12, 3)).astype(np.float32)
    pool = torch.nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
    expected = pool(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.asarray(downsample(jnp.asarray(x))), expected, atol=1e-6)


def _export_generator(config, state, model_dir):
    """The generator of `state` written as an export directory; returns its config.json."""
    model_dir.mkdir()
    arch = config_json.architectures(config.to_dict())["generator"]
    tensors = convert.flax_to_torch("generator", arch, state.g.params, state.g.stats, step=1)
    convert.save_safetensors(tensors, model_dir / export_format.GENERATOR_FILE)
    exported = config_json.make_config_json(
        config.to_dict(), step=1, version="test", with_discriminator=False
    )
    (model_dir / export_format.CONFIG_FILE).write_text(json.dumps(exported))
    return exported


def _jax_colorize(nets, state, sketch, reference):
    """uint8 (H, W, 1) sketch + uint8 reference -> the JAX generator's uint8-scaled RGB."""
    g = nnx.merge(nets.g_graph, state.g.params, state.g.stats)
    y = g(
        jnp.asarray(sketch[None], jnp.float32) / 127.5 - 1,
        train=False,
        reference=jnp.asarray(reference[None], jnp.float32) / 127.5 - 1,
    )
    return np.round((np.asarray(y[0]) + 1) * 127.5).astype(int)


def _colorize_files(tmp_path, colorizer, sketch, reference) -> np.ndarray:
    """Writes the sketch and the reference as PNGs, colorizes them as the CLI does, returns the
    result read back as int RGB."""
    cv2.imwrite(str(tmp_path / "sketch.png"), sketch)
    cv2.imwrite(str(tmp_path / "ref.png"), cv2.cvtColor(reference, cv2.COLOR_RGB2BGR))
    (out,) = inference.colorize_files(
        colorizer,
        str(tmp_path / "sketch.png"),
        str(tmp_path / "out.png"),
        reference=str(tmp_path / "ref.png"),
    )
    return cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB).astype(int)


def test_colorize_with_a_reference_matches_jax(tmp_path):
    config = small_config("none")
    nets, state = _random_state(config)
    model_dir = tmp_path / "export"
    config_json = _export_generator(config, state, model_dir)

    rng = np.random.default_rng(0)
    sketch = rng.integers(0, 256, (32, 32, 1), np.uint8)
    # A 48x40 reference: colorize scales its short side to image_size and takes the centre.
    reference = rng.integers(0, 256, (48, 40, 3), np.uint8)
    colorizer = inference.load(model_dir, "cpu")
    assert colorizer.takes_reference
    got = _colorize_files(tmp_path, colorizer, sketch, reference)
    with pytest.raises(InputError, match="pass --reference IMAGE"):
        inference.colorize_files(colorizer, str(tmp_path / "sketch.png"), str(tmp_path / "o.png"))

    view = inference.reference_image(tmp_path / "ref.png", 32)
    assert view.shape == (32, 32, 3)
    expected = _jax_colorize(nets, state, sketch, view)
    assert np.abs(got - expected).max() <= 1  # rounding at a .5 boundary at most

    written = exporter._traced_exports(model_dir, config_json, ("torchscript",))
    traced = torch.jit.load(str(written["torchscript"]))
    eager, _ = torch_models.load(model_dir)
    x, r = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(traced(x, r), eager(x, r), rtol=0, atol=1e-5)


def test_colorize_with_a_reference_for_a_non_square_model(tmp_path):
    # config.json stores a (height, width) image_size as [h, w]; the reference is prepared at
    # that size the way validation prepares the target's own view (cover it, centre crop).
    config = small_config("none")
    config.image_size = (32, 64)
    config_checks.validate(config)
    nets, state = _random_state(config)
    config_json = _export_generator(config, state, tmp_path / "export")
    assert config_json["inputs"]["image_size"] == [32, 64]

    rng = np.random.default_rng(1)
    sketch = rng.integers(0, 256, (32, 64, 1), np.uint8)
    # 30x40: scaled by 1.6 to 48x64 to cover 32x64, then its centre rows.
    reference = rng.integers(0, 256, (30, 40, 3), np.uint8)
    got = _colorize_files(tmp_path, inference.load(tmp_path / "export", "cpu"), sketch, reference)
    assert got.shape == (32, 64, 3)

    view = inference.reference_image(tmp_path / "ref.png", (32, 64))
    np.testing.assert_array_equal(view, crop.crop_resize(reference, (32, 64), None))
    assert np.abs(got - _jax_colorize(nets, state, sketch, view)).max() <= 1
