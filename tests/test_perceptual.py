"""VGG-19 perceptual and style losses (jaxcolor/training/vgg.py, losses.py): parity with a
PyTorch VGG-19 built in conftest.py, strict loading, the .pth reader, the losses against NumPy,
the config errors. tests/test_reference_model.py trains configs/reference.py with them."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import load_config
from safetensors.numpy import save_file
from test_export import _real_batch
from test_step import _console_line, _shown

from jaxcolor import parallel
from jaxcolor.core.errors import ConfigError
from jaxcolor.training import config_checks, losses, vgg
from jaxcolor.training import frozen as frozen_lib
from jaxcolor.training.state import create_train_state
from jaxcolor.training.step import jit_train_step
from jaxcolor.weights_file import WeightsFileError, read_state_dict

TOL = 1e-4
torch.set_num_threads(2)
# torchvision's features indices of the layers the losses use by default.
TORCH_INDEX = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}


def _config_with_vgg(path, layers=vgg.DEFAULT_LAYERS, dtype="float32"):
    c = load_config("tiny")
    c.update(compute_dtype=dtype)
    c.loss.update(perceptual_weight=1.0, vgg_weights=str(path), vgg_layers=layers)
    return c


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_flax_vgg19_matches_pytorch(vgg19_pth, dtype):
    frozen = vgg.load_vgg(_config_with_vgg(vgg19_pth["pth"], dtype=dtype))
    shape = (2, 32, 32, 3) if dtype == "float32" else (1, 16, 16, 3)  # bf16 convs are slow here
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    got = frozen(jnp.asarray(x))  # op by op: compiling the 13-conv graph costs more here
    mean = torch.tensor(vgg.IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(vgg.IMAGENET_STD)[:, None, None]
    h = ((torch.from_numpy(x).permute(0, 3, 1, 2) + 1) / 2 - mean) / std
    expected, features = {}, vgg19_pth["features"]
    with torch.no_grad():
        for i, layer in enumerate(features[: max(TORCH_INDEX.values()) + 1]):
            h = layer(h)
            expected[i] = h.permute(0, 2, 3, 1).numpy().copy()  # ReLU is in place
    diffs = {}
    for name, g in zip(vgg.parse_layers(vgg.DEFAULT_LAYERS), got, strict=True):
        e = expected[TORCH_INDEX[name]]
        assert g.shape == e.shape and g.dtype == jnp.dtype(dtype), name
        scale = float(np.abs(e).max())
        assert scale > 0.5, (name, scale)  # not a comparison of zeros
        diff = float(np.abs(np.asarray(g, np.float32) - e).max())
        # float32: absolute (features reach ~10 here); bf16, the step's compute dtype: relative
        # to the largest feature, 8 mantissa bits through up to 13 convolutions.
        diffs[name] = diff if dtype == "float32" else diff / scale
    assert max(diffs.values()) <= (TOL if dtype == "float32" else 0.05), diffs


def test_pth_reader_needs_no_torch_and_runs_no_code(vgg19_pth, tmp_path):
    """Zip and legacy .pth files read as torch.load reads them; a pickled object is refused."""
    state = vgg19_pth["state"]
    tensors = read_state_dict(vgg19_pth["pth"])
    assert set(tensors) == set(state)
    for k in ("features.0.weight", "features.34.bias"):
        np.testing.assert_array_equal(tensors[k], state[k].numpy())
    small = collections.OrderedDict(
        a=torch.randn(3, 4).t(), b=torch.arange(5.0, dtype=torch.float16)[2:], c=torch.ones(())
    )
    legacy = tmp_path / "legacy.pth"
    torch.save(small, legacy, _use_new_zipfile_serialization=False)
    for k, v in read_state_dict(legacy).items():
        np.testing.assert_array_equal(v, small[k].float().numpy())
    cut = tmp_path / "cut.pth"
    cut.write_bytes(legacy.read_bytes()[:-8])
    with pytest.raises(WeightsFileError, match=r"cut\.pth is truncated"):
        read_state_dict(cut)
    evil = tmp_path / "evil.pth"
    torch.save({"features.0.weight": torch.nn.Linear(2, 2)}, evil)
    c = _config_with_vgg(evil)
    with pytest.raises(ConfigError, match=r"evil\.pth .*torch\.nn\.modules\.linear\.Linear"):
        vgg.load_vgg(c)


def test_strict_loading_names_the_wrong_key_or_shape(vgg19_pth, tmp_path):
    tensors = {k: v.numpy() for k, v in vgg19_pth["state"].items()}
    renamed = dict(tensors)
    renamed["features.1.weight"] = renamed.pop("features.2.weight")
    with pytest.raises(
        ConfigError,
        match=r"loss\.vgg_weights=x is not VGG-19: missing keys: features\.2\.weight; "
        r"unexpected keys: features\.1\.weight; .*vgg19-dcbb9e9d\.pth",
    ):
        vgg.from_state_dict(renamed, ["relu1_1"], dtype=jnp.float32, source="x")
    reshaped = dict(tensors, **{"features.28.bias": np.zeros(256, np.float32)})
    with pytest.raises(ConfigError, match=r"wrong shapes: features\.28\.bias \(256,\) \(expected"):
        vgg.from_state_dict(reshaped, ["relu1_1"], dtype=jnp.float32, source="x")
    # The same tensors as .safetensors load to the same network.
    path = tmp_path / "vgg19.safetensors"
    save_file({k: v for k, v in tensors.items() if k.startswith("features.")}, path)
    a = vgg.load_vgg(_config_with_vgg(path, "relu2_2")).params
    b = vgg.load_vgg(_config_with_vgg(vgg19_pth["pth"], "relu2_2")).params
    assert len(a["convs"]) == 4  # built only up to the deepest layer asked for
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_losses_equal_numpy():
    rng = np.random.default_rng(3)
    fake = [rng.normal(size=(2, s, s, c)).astype(np.float32) for s, c in ((6, 4), (3, 5))]
    real = [rng.normal(size=f.shape).astype(np.float32) for f in fake]

    def gram(f):
        b, h, w, c = f.shape
        m = f.reshape(b, h * w, c)
        return m.transpose(0, 2, 1) @ m / (c * h * w)

    np.testing.assert_allclose(losses.gram_matrix(jnp.asarray(fake[0])), gram(fake[0]), 1e-5)
    perceptual = sum(np.abs(f - r).mean() for f, r in zip(fake, real, strict=True))
    style = sum(np.abs(gram(f) - gram(r)).mean() for f, r in zip(fake, real, strict=True))
    as_jax = [list(map(jnp.asarray, fake)), list(map(jnp.asarray, real))]
    np.testing.assert_allclose(losses.perceptual_loss(*as_jax), perceptual, rtol=1e-5)
    np.testing.assert_allclose(losses.style_loss(*as_jax), style, rtol=1e-5)


def test_missing_weights_and_bad_options_are_config_errors(tmp_path):
    c = load_config("tiny")
    config_checks.validate(c)  # off by default
    c.loss.style_weight = 50.0
    with pytest.raises(
        ConfigError,
        match=r"^loss\.perceptual_weight=0 and loss\.style_weight=50 need VGG-19 weights: set "
        r"loss\.vgg_weights=PATH; give torchvision's ImageNet VGG-19 weights, "
        r"vgg19-dcbb9e9d\.pth \(https://download\.pytorch\.org/models/vgg19-dcbb9e9d\.pth",
    ):
        config_checks.validate(c)
    c.loss.vgg_weights = str(tmp_path / "vgg19.bin")
    (tmp_path / "vgg19.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"loss\.vgg_weights=\S+vgg19\.bin: unknown file type"):
        config_checks.validate(c)
    c.loss.vgg_weights = ""
    c.loss.vgg_layers = "relu1_1,relu6_1"
    with pytest.raises(ConfigError, match=r"loss\.vgg_layers: unknown VGG-19 layer\(s\) relu6_1"):
        config_checks.validate(c)
    c.loss.vgg_layers, c.loss.style_weight = vgg.DEFAULT_LAYERS, -1.0
    with pytest.raises(ConfigError, match=r"loss\.style_weight must be >= 0"):
        config_checks.validate(c)


def _abstract_step_inputs(c):
    """(mesh, Networks, the frozen networks with the loaded VGG-19, abstract state, a real
    global batch) for `c`."""
    mesh = parallel.create_mesh(-1)
    frozen = frozen_lib.load(c, parallel.replicated(mesh))
    created = {}

    def init():
        state, created["nets"] = create_train_state(c, mesh=mesh)
        return state

    state = jax.eval_shape(init)
    batch = parallel.to_global(_real_batch(c, 8), parallel.batch_sharding(mesh))
    return mesh, created["nets"], frozen, state, batch


@pytest.mark.parametrize("name", ["unet", "classic_unet"])
def test_every_colorizer_family_can_use_the_losses(vgg19_pth, tiny_config, name, monkeypatch):
    """The losses live in the shared step: the pix2pix U-Net GAN and the classic U-Net
    regressor (bf16, as the configs compute) report them, also on the console line; without
    the loaded VGG-19 in its frozen networks a step refuses to trace."""
    c = tiny_config
    c.update(compute_dtype="bfloat16")
    c.model.generator.name = name
    if name == "classic_unet":  # as configs/unet_scribbles.py: a regressor, no discriminator
        c.model.generator.update(num_downs=3, norm="none", dropout=0.0)
        c.loss.gan_mode = "none"
    c.loss.update(perceptual_weight=0.01, style_weight=50.0, vgg_weights=str(vgg19_pth["pth"]))
    c.loss.vgg_layers = "relu1_2,conv2_1"
    config_checks.validate(c)
    mesh, nets, frozen, state, batch = _abstract_step_inputs(c)
    _, metrics = jax.eval_shape(jit_train_step(nets, c, mesh), state, frozen, batch)
    assert {"g_perceptual", "g_style"} <= set(metrics)
    assert metrics["g_style"].shape == () and metrics["g_style"].dtype == jnp.float32
    shown = ["g_l1", "g_perceptual", "g_style"] + (["g_gan", "d_loss"] if name == "unet" else [])
    assert _shown(_console_line(metrics, monkeypatch)) == shown
    with pytest.raises(ValueError, match=r"pass vgg=vgg\.load_vgg"):
        jax.eval_shape(jit_train_step(nets, c, mesh), state, {}, batch)


def test_frozen_weights_are_arguments_not_constants(vgg19_pth, tiny_config):
    """The VGG-19 (and sketch extractor) weights reach the compiled step as a replicated
    argument: closed over, jit would embed them in the program (VGG-19's ~80 MB in every
    executable and persistent-cache entry)."""
    c = tiny_config
    c.loss.update(perceptual_weight=0.01, style_weight=50.0, vgg_weights=str(vgg19_pth["pth"]))
    c.loss.vgg_layers = "relu1_2"
    mesh, nets, frozen, state, batch = _abstract_step_inputs(c)
    text = jit_train_step(nets, c, mesh).lower(state, frozen, batch).as_text()
    # conv1_2's kernel, 3x3x64x64: an argument of the module, never a constant.
    kernel = "tensor<3x3x64x64xf32>"
    assert kernel in text
    assert not [line for line in text.splitlines() if "constant" in line and kernel in line]
