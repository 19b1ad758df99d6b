"""Up-front config validation: each message names the key and the fix."""

from __future__ import annotations

import ml_collections

from jaxcolor.core.errors import ConfigError
from jaxcolor.core.image_size import describe, image_hw
from jaxcolor.data.decode import LAYOUTS
from jaxcolor.data.hints import HINT_CHANNELS
from jaxcolor.data.sketch import DATASET_SKETCH, is_model_sketch, parse_sketch_mix
from jaxcolor.models import DISCRIMINATORS, DTYPES, GENERATORS
from jaxcolor.models.layers import NORMS, UPSAMPLE_IMPLS
from jaxcolor.models.reference import STYLE_BLOCKS, STYLE_CODES
from jaxcolor.training.losses import GAN_MODES, RECON
from jaxcolor.training.step import ON_NONFINITE


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


TASKS = ("colorize", "sketch")
# Generators whose input sides must be multiples of 2**model.generator.num_downs.
POOLING_GENERATORS = ("unet", "classic_unet")


def _check_image_size(config: ml_collections.ConfigDict, multiple: int, reason: str) -> None:
    """Each side of image_size a multiple of `multiple` (named by `reason`)."""
    h, w = image_hw(config)
    _require(
        h % multiple == 0 and w % multiple == 0,
        f"image_size={describe(config.image_size)} must have each side a multiple of {reason}"
        f" = {multiple}; change image_size or {reason.split('**')[-1]}.",
    )


def _check_task(config: ml_collections.ConfigDict) -> None:
    task = config.get("task", "colorize")
    _require(task in TASKS, f"task must be one of {TASKS}, got {task!r}")
    model_sketch = is_model_sketch(config.data.sketch)
    if task == "sketch":
        out = config.model.generator.out_channels
        _require(
            out == 1,
            f"task='sketch' learns a 1-channel sketch; set model.generator.out_channels=1 "
            f"(got {out}).",
        )
        _require(
            config.data.hints == "none",
            f"task='sketch' takes the colour image alone; set data.hints='none' (got "
            f"{config.data.hints!r}).",
        )
        _require(
            not model_sketch,
            "task='sketch' learns its targets from data.sketch; a sketch model "
            f"(data.sketch={config.data.sketch!r}) cannot be its own target: use e.g. 'xdog'.",
        )
    if model_sketch:
        from jaxcolor.training import sketcher  # reads the export's config.json only

        sketcher.read_export(config)


def _check_network_names(config: ml_collections.ConfigDict) -> None:
    """The networks exist (the discriminator only where a GAN loss uses one)."""
    nets = [("generator", GENERATORS)]
    if config.loss.gan_mode != "none":
        nets.append(("discriminator", DISCRIMINATORS))
    for net, registry in nets:
        name = config.model[net].name
        _require(
            name in registry,
            f"model.{net}.name={name!r} is not a known {net}; choose one of {sorted(registry)}.",
        )


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for a config that would fail (or silently misbehave) later."""
    image_hw(config)  # raises ConfigError naming image_size for a malformed value
    _require(
        config.loss.gan_mode in GAN_MODES,
        f"loss.gan_mode must be one of {GAN_MODES}, got {config.loss.gan_mode!r}",
    )
    _check_network_names(config)  # every later rule reads the options of these networks
    for key in ("num_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
        _require(config[key] >= 1, f"{key} must be >= 1, got {config[key]}")
    _require(
        config.compute_dtype in DTYPES,
        f"compute_dtype must be one of {sorted(DTYPES)}, got {config.compute_dtype!r}",
    )
    _require(
        config.loss.recon in RECON, f"loss.recon must be one of {RECON}, got {config.loss.recon!r}"
    )
    for net in ("generator", "discriminator"):
        norm = config.model[net].norm
        _require(norm in NORMS, f"model.{net}.norm must be one of {NORMS}, got {norm!r}")
    g = config.model.generator
    if g.name in POOLING_GENERATORS:
        _check_image_size(config, 2**g.num_downs, "2**model.generator.num_downs")
    if g.name == "unet":
        _require(
            0.0 <= g.dropout < 1.0, f"model.generator.dropout must be in [0, 1), got {g.dropout}"
        )
        impl = g.get("upsample_impl", "auto")
        _require(
            impl in UPSAMPLE_IMPLS,
            f"model.generator.upsample_impl must be one of {UPSAMPLE_IMPLS}, got {impl!r}",
        )
    if g.name == "resunet":
        _check_resunet(config)
    _check_deep_supervision_and_pool(config)
    if config.loss.gan_mode != "none":
        d = config.model.discriminator
        min_size = 2**d.n_layers * 4
        _require(
            min(image_hw(config)) >= min_size,
            f"image_size={describe(config.image_size)} is too small for a PatchGAN with "
            f"model.discriminator.n_layers={d.n_layers} (needs >= {min_size}).",
        )
    if g.name == "classic_unet":
        _require(
            0.0 <= g.dropout < 1.0, f"model.generator.dropout must be in [0, 1), got {g.dropout}"
        )
    if config.data.sketch != DATASET_SKETCH and not is_model_sketch(config.data.sketch):
        parse_sketch_mix(config.data.sketch)  # raises ConfigError naming data.sketch
    _check_task(config)
    _require(
        config.data.layout in LAYOUTS,
        f"data.layout must be one of {LAYOUTS}, got {config.data.layout!r}",
    )
    _require(
        config.data.hints in HINT_CHANNELS,
        f"data.hints must be one of {sorted(HINT_CHANNELS)}, got {config.data.hints!r}",
    )
    _require(
        config.train.on_nonfinite in ON_NONFINITE,
        f"train.on_nonfinite must be one of {ON_NONFINITE}, got {config.train.on_nonfinite!r}",
    )
    _require(
        config.train.max_nonfinite >= 1,
        f"train.max_nonfinite must be >= 1, got {config.train.max_nonfinite}",
    )
    for key in ("eval_split_every", "eval_max_images"):
        _require(config[key] >= 0, f"{key} must be >= 0 (0 = off / all images), got {config[key]}")
    _require(
        0.0 <= config.data.val_fraction < 1.0,
        f"data.val_fraction must be in [0, 1), got {config.data.val_fraction}",
    )
    _validate_reference_models(config)


def _validate_reference_models(config: ml_collections.ConfigDict) -> None:
    """The reference-guided generator and the multi-scale discriminator (configs/reference.py)."""
    g = config.model.generator
    if g.name == "reference_unet":
        _check_image_size(config, 2**g.num_downs, "2**model.generator.num_downs")
        _require(
            0.0 <= g.dropout < 1.0, f"model.generator.dropout must be in [0, 1), got {g.dropout}"
        )
        impl = g.get("upsample_impl", "auto")
        _require(
            impl in UPSAMPLE_IMPLS,
            f"model.generator.upsample_impl must be one of {UPSAMPLE_IMPLS}, got {impl!r}",
        )
        _require(
            g.style_codes in STYLE_CODES,
            f"model.generator.style_codes must be one of {STYLE_CODES}, got {g.style_codes}",
        )
        _require(
            g.style_codes == 1 or g.num_downs > STYLE_BLOCKS,
            f"model.generator.style_codes=4 fuses codes into decoder levels 1..4 and needs "
            f"model.generator.num_downs >= {STYLE_BLOCKS + 1}, got {g.num_downs}.",
        )
        _require(
            g.style_width >= 1 and g.style_dim >= g.style_width,
            f"model.generator.style_dim ({g.style_dim}) must be >= model.generator.style_width "
            f"({g.style_width}) >= 1.",
        )
        # Four stride-2 blocks: the reference must keep at least one pixel.
        _require(
            min(image_hw(config)) >= 2**STYLE_BLOCKS,
            f"image_size={describe(config.image_size)} is too small for the style encoder's "
            f"{STYLE_BLOCKS} stride-2 blocks (needs >= {2**STYLE_BLOCKS}).",
        )
    d = config.model.discriminator
    if config.loss.gan_mode != "none" and d.name == "multiscale_patchgan":
        _require(
            d.num_scales >= 1,
            f"model.discriminator.num_scales must be >= 1, got {d.num_scales}",
        )
        min_size = 2 ** (d.num_scales - 1) * 2**d.n_layers * 4
        _require(
            min(image_hw(config)) >= min_size,
            f"image_size={describe(config.image_size)} is too small for "
            f"model.discriminator.num_scales={d.num_scales} PatchGANs with n_layers={d.n_layers} "
            f"(the 1/{2 ** (d.num_scales - 1)}"
            f" scale needs >= {min_size}); lower model.discriminator.num_scales or n_layers.",
        )


def _check_resunet(config: ml_collections.ConfigDict) -> None:
    g = config.model.generator
    _check_image_size(config, 2**g.num_downs, "2**model.generator.num_downs")
    _require(
        0 <= g.num_aux < g.num_downs,
        f"model.generator.num_aux must be in [0, model.generator.num_downs - 1 = "
        f"{g.num_downs - 1}], got {g.num_aux}",
    )


def _check_deep_supervision_and_pool(config: ml_collections.ConfigDict) -> None:
    weights = tuple(config.loss.get("aux_weights", ()))
    if any(w != 0 for w in weights):
        g = config.model.generator
        _require(
            g.name == "resunet",
            f"loss.aux_weights={weights} needs a generator with deep-supervision outputs "
            f"(model.generator.name='resunet'), not {g.name!r}; set loss.aux_weights=().",
        )
        _require(
            len(weights) == g.num_aux,
            f"loss.aux_weights has {len(weights)} weights but model.generator.num_aux="
            f"{g.num_aux}; give one weight per aux output.",
        )
        _require(all(w >= 0 for w in weights), f"loss.aux_weights must be >= 0, got {weights}")
    pool = config.model.get("image_pool")
    if pool is None:
        return
    _require(pool.size >= 0, f"model.image_pool.size must be >= 0 (0 = off), got {pool.size}")
    _require(0.0 <= pool.prob <= 1.0, f"model.image_pool.prob must be in [0, 1], got {pool.prob}")
    _require(
        pool.size == 0 or config.loss.gan_mode != "none",
        "model.image_pool.size > 0 needs a discriminator; set model.image_pool.size=0 with "
        "loss.gan_mode='none'.",
    )
