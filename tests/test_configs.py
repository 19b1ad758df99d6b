"""Every config in configs/ trains as shipped, with each hint method and Grain worker processes,
with sketches and hints derived on the host and on the device (data.derive).

Each run is a few steps at the smallest size the config's networks accept, with
data.num_workers=2: every accelerator config reads through worker processes, and what crosses
their boundary differs by hint method (hints="none" once crashed there). Every config x hint
pair is validated; the pairs that train (each about 5-30 s on 2 cores, mostly compilation) are
- every config as shipped and with hints="none" (automatic colorization);
- every hint method on tiny.py, and one hinted run of the reference model (its default is none).
Together with tests/test_sketch_hints.py (every hint method's batches through 2 workers), this
covers each config, each hint method and each input layout (0, 3, 4, 12 hint channels) through
workers; the remaining pairs differ from a trained one only in which layout a network reads.
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
import pytest
from conftest import REPO, config_module, load_config

from jaxcolor.core.errors import ConfigError
from jaxcolor.data.hints import HINT_CHANNELS
from jaxcolor.run.loop import train_and_evaluate
from jaxcolor.training import config_checks

CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("*.py"))
# Configs that take an argument (--config=configs/pod.py:tpu=8): the one a user passes first.
CONFIG_ARGS = {"pod": ("tpu=8",)}
HINTS = sorted(HINT_CHANNELS)
STEPS = 2


def small(name: str, hints: str):
    """configs/<name>.py with data.hints=`hints`, shrunk to seconds on CPU: narrow networks at
    32 px (a pair keeps its aspect: 32x48), or the smallest size a multi-scale D accepts."""
    c = load_config(name, *CONFIG_ARGS.get(name, ()))
    g, d = c.model.generator, c.model.discriminator
    c.data.hints = hints
    c.data.num_workers = 2
    c.data.prefetch = 1
    c.data.num_synthetic = 32
    c.batch_size = c.eval_batch_size = 8
    c.num_steps = c.log_every = c.eval_every = c.checkpoint_every = STEPS
    c.eval_split_every = 0  # the split evaluator reads in-process (tests/test_evaluation.py)
    g.ngf, d.ndf, d.n_layers = 8, 8, 1
    g.num_downs = 3
    if "style_width" in g:
        g.style_width, g.style_dim = 8, 16
    side = 32
    if c.loss.gan_mode != "none" and d.get("num_scales", 1) > 1:
        # Each coarser scale halves the image; the coarsest still needs a whole PatchGAN.
        side = max(side, 2 ** (d.num_scales - 1) * 2**d.n_layers * 4)
    c.image_size = (side, side * 3 // 2) if isinstance(c.image_size, tuple | list) else side
    if c.model.image_pool.size:
        c.model.image_pool.size = 4
    return c


PAIRS = [(name, hints) for name in CONFIGS for hints in HINTS]


def _shipped_hints(name: str) -> str:
    return load_config(name, *CONFIG_ARGS.get(name, ())).data.hints


def _trained_pairs() -> list[tuple[str, str]]:
    pairs = {("tiny", hints) for hints in HINTS} | {("reference", "points")}
    for name in CONFIGS:
        pairs |= {(name, _shipped_hints(name)), (name, "none")}
    return sorted(pairs)


TRAINED = _trained_pairs()
# Both data.derive paths: every trained pair on the host and on the device, except that a
# config's added "none" (sketch only, which tiny.py's and the sketch-only configs' cover) runs
# on the host alone.
RUNS = [(name, hints, "host") for name, hints in TRAINED] + [
    (name, hints, "device")
    for name, hints in TRAINED
    if hints != "none" or name == "tiny" or _shipped_hints(name) == "none"
]


def test_the_trained_pairs_cover_every_config_and_hint_method():
    assert {name for name, _ in TRAINED} == set(CONFIGS) and len(CONFIGS) >= 7, CONFIGS
    assert {hints for _, hints in TRAINED} == set(HINTS)


def _sketch_task_refuses(c) -> bool:
    return c.get("task", "colorize") == "sketch" and c.data.hints != "none"


@pytest.mark.parametrize(("name", "hints"), PAIRS, ids=[f"{n}-{h}" for n, h in PAIRS])
def test_every_config_and_hint_method_is_valid_or_refused_up_front(name, hints):
    c = small(name, hints)
    if _sketch_task_refuses(c):
        # The sketch extractor reads the colour image alone: a hint method is refused, naming
        # the key.
        with pytest.raises(ConfigError, match="data.hints='none'"):
            config_checks.validate(c)
    else:
        config_checks.validate(c)


@pytest.mark.parametrize(("name", "hints", "derive"), RUNS, ids=["-".join(r) for r in RUNS])
def test_config_trains_with_hint_method_and_workers(name, hints, derive, tmp_path):
    c = small(name, hints)
    c.data.derive = derive
    state = train_and_evaluate(c, str(tmp_path))
    assert int(state.step) == STEPS
    nets = [state.g] + ([state.d] if state.d is not None else [])
    params = jax.tree.leaves([net.params for net in nets])
    assert params and all(np.isfinite(np.asarray(p)).all() for p in params)


# ---------------------------------------------------------------------------------------------
# Sizing for a Cloud TPU slice (configs/<family>.py:tpu=TYPE, jaxcolor/core/slice_sizing.py)

FAMILIES = ["pod", "unet_scribbles", "resunet_palette", "reference"]
SLICES = {"v5litepod-8": 8, "v5litepod-256": 256, "v6e-8": 8, "v4-32": 16, "v5p-64": 32}


def _measured(name: str) -> dict[str, int]:
    from jaxcolor.core import slice_sizing

    if name == "pod":
        return slice_sizing.PIX2PIX_MAX_PER_CHIP
    return config_module(name).MAX_PER_CHIP_BATCH


@pytest.mark.parametrize("name", FAMILIES)
def test_configs_size_the_batch_by_chip_type_for_a_tpu_slice(name):
    from jaxcolor.core import accelerators, slice_sizing

    mine = load_config(name, "tpu=8") if name == "pod" else load_config(name)
    if name == "pod":  # pod.py:8 is 8 chips at 8 per chip: default.py's 64 images per step
        assert mine.batch_size == 64
    for accelerator, chips in SLICES.items():
        c = load_config(name, f"tpu={accelerator}")
        chip = accelerators.chip_of(accelerator).family
        fits = slice_sizing.max_per_chip(_measured(name), chip)
        per_chip = c.batch_size // chips
        assert c.batch_size == per_chip * chips <= slice_sizing.MAX_GLOBAL_BATCH
        # The largest power of two within 3/4 of what fits, unless the global cap is lower.
        assert per_chip & (per_chip - 1) == 0 and per_chip <= 0.75 * fits
        assert 2 * per_chip > 0.75 * fits or 2 * per_chip * chips > slice_sizing.MAX_GLOBAL_BATCH
        # A run sees as many images as the config at its own batch; the lr grows with sqrt.
        ratio = c.batch_size / mine.batch_size
        assert c.num_steps * c.batch_size == pytest.approx(mine.num_steps * mine.batch_size, 0.01)
        lr = mine.optimizer.learning_rate
        assert c.optimizer.learning_rate == pytest.approx(min(1e-3, lr * ratio**0.5))
        assert c.eval_batch_size % chips == 0 and c.eval_batch_size >= mine.eval_batch_size
        assert c.data.num_workers == 16 and c.compute_dtype == "bfloat16"
        config_checks.validate(c)


def test_reference_takes_a_slice_type_a_vgg_file_or_both():
    from jaxcolor.core import slice_sizing

    module = config_module("reference")
    sized, vgg = (
        load_config("reference", "tpu=v5litepod-8"),
        load_config("reference", "vgg=/w/vgg19.pth"),
    )
    both = load_config("reference", "tpu=v5litepod-8, vgg=/w/vgg19.pth")
    assert vgg.batch_size == load_config("reference").batch_size == 64
    assert (sized.loss.vgg_weights, vgg.loss.vgg_weights) == ("", "/w/vgg19.pth")
    assert both.loss.vgg_weights == "/w/vgg19.pth" and both.loss.style_weight > 0
    # With the VGG losses the step is larger: its own measurement sizes the batch.
    for c, measured in ((sized, module.MAX_PER_CHIP_BATCH), (both, module.MAX_PER_CHIP_BATCH_VGG)):
        assert c.batch_size == 8 * slice_sizing.per_chip_batch(measured, "v5litepod")
    assert load_config("reference", "vgg=weights/v1,2.pth").loss.vgg_weights == "weights/v1,2.pth"
    with pytest.raises(ValueError, match=r"configs/reference\.py:tpu='v7-8' is not a known"):
        load_config("reference", "tpu=v7-8,vgg=/w/vgg19.pth")


def test_an_unknown_slice_type_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"configs/unet_scribbles\.py:tpu='v7-8' is not a known"):
        load_config("unet_scribbles", "tpu=v7-8")


# ---------------------------------------------------------------------------------------------
# Named config arguments (jaxcolor/core/config_arg.py) and configs read back (jaxcolor/config.py)


def test_a_config_argument_is_named_and_checked():
    from jaxcolor.core.config_arg import parse_arg

    arg = parse_arg("tpu=v4-32, vgg=w/v1,2.pth", "configs/x.py", vgg="", tpu="")
    assert (arg.vgg, arg.tpu) == ("w/v1,2.pth", "v4-32")  # a value may hold commas
    assert parse_arg("", "configs/x.py", vgg="", tpu="").to_dict() == {"vgg": "", "tpu": ""}
    assert parse_arg("a.pth", "configs/x.py", vgg="", tpu="").vgg == "a.pth"  # the first, alone
    refused = (
        r"^configs/x\.py: unknown argument 'type' in 'type=v4-8'; its arguments are vgg, tpu "
        r"\(configs/x\.py:vgg=\.\.\.,tpu=\.\.\.\)\.$"
    )
    with pytest.raises(ValueError, match=refused):
        parse_arg("type=v4-8", "configs/x.py", vgg="", tpu="")
    with pytest.raises(ValueError, match="argument 'tpu' given twice"):
        parse_arg("tpu=v4-8,tpu=v4-16", "configs/x.py", vgg="", tpu="")
    # Every config with an argument takes it by name, the unnamed form being its first.
    assert load_config("pod", "tpu=v4-32").batch_size == load_config("pod", "v4-32").batch_size
    assert load_config("cpu128", "hints=points").data.hints == "points"
    with pytest.raises(ValueError, match=r"configs/resunet_palette\.py: unknown argument 'hints'"):
        load_config("resunet_palette", "hints=blur")


def test_a_network_section_starts_from_its_family_defaults():
    from jaxcolor import config as base
    from jaxcolor.nets import registry
    from jaxcolor.nets.base import GENERATOR

    g = base.generator("resunet", num_aux=1)
    defaults = registry.lookup(GENERATOR, "resunet").defaults
    assert g.to_dict() == {"name": "resunet", **defaults, "num_aux": 1}
    with pytest.raises(ConfigError, match=r"'resunet' has no option 'dropout'; its options: "):
        base.generator("resunet", dropout=0.5)
    palette = load_config("resunet_palette").model.generator
    assert "dropout" not in palette and "upsample_impl" not in palette


def test_a_config_read_back_is_completed_with_the_keys_added_since():
    """A checkpoint's config from before keys existed (task, loss.hint_weight, train.ema_decay,
    the reference generator's num_aux, the networks' names) gets the base's and the family's
    defaults; its own values stay, and a resunet section gets no U-Net option."""
    from jaxcolor import config as base

    old = load_config("reference").to_dict()
    del old["task"], old["loss"]["hint_weight"], old["train"]["ema_decay"]
    del old["model"]["generator"]["num_aux"]
    old["loss"]["aux_weights"] = []  # JSON's list for a tuple: kept as saved
    done = base.complete(old)
    assert (done["task"], done["loss"]["hint_weight"], done["train"]["ema_decay"]) == (
        "colorize",
        0.0,
        0.0,
    )
    assert done["model"]["generator"]["num_aux"] == 0 and done["loss"]["aux_weights"] == []
    assert done["model"]["discriminator"] == load_config("reference").model.discriminator.to_dict()
    assert done["num_steps"] == 22_225  # its own value
    unnamed = load_config("tiny").to_dict()
    del unnamed["model"]["generator"]["name"], unnamed["model"]["discriminator"]["name"]
    del unnamed["model"]["generator"]["upsample_impl"]
    assert base.complete(unnamed)["model"] == load_config("tiny").model.to_dict()
    palette = base.complete(load_config("resunet_palette").to_dict())
    assert palette == load_config("resunet_palette").to_dict()
    config_checks.validate(ml_collections.ConfigDict(palette))


def test_an_older_export_config_json_is_completed():
    """config.json from before `task`, the networks' names and reference_unet's num_aux reads
    as a colorizer with pix2pix's networks / num_aux 0; its own values stay."""
    from jaxcolor.export import config_json
    from jaxcolor.nets import export_format

    def written(name):
        config = load_config(name).to_dict()
        return config_json.make_config_json(config, step=1, version="0", with_discriminator=True)

    old = written("tiny")
    del old["task"], old["generator"]["name"], old["discriminator"]["name"]
    assert export_format.complete(old) == written("tiny")
    reference = written("reference")
    del reference["generator"]["num_aux"]
    done = export_format.complete(reference)
    assert done["generator"]["num_aux"] == 0 and done["generator"]["style_dim"] == 256
