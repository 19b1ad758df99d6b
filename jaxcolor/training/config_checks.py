"""Up-front config validation: each message names the key and the fix."""

from __future__ import annotations

import ml_collections

from jaxcolor.data.decode import LAYOUTS
from jaxcolor.data.hints import HINT_CHANNELS
from jaxcolor.data.sketch import DATASET_SKETCH, parse_sketch_mix
from jaxcolor.errors import ConfigError
from jaxcolor.models import DTYPES
from jaxcolor.models.layers import NORMS, UPSAMPLE_IMPLS
from jaxcolor.training.losses import GAN_MODES, RECON
from jaxcolor.training.step import ON_NONFINITE


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for a config that would fail (or silently misbehave) later."""
    for key in ("num_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
        _require(config[key] >= 1, f"{key} must be >= 1, got {config[key]}")
    _require(
        config.compute_dtype in DTYPES,
        f"compute_dtype must be one of {sorted(DTYPES)}, got {config.compute_dtype!r}",
    )
    _require(
        config.loss.gan_mode in GAN_MODES,
        f"loss.gan_mode must be one of {GAN_MODES}, got {config.loss.gan_mode!r}",
    )
    _require(
        config.loss.recon in RECON, f"loss.recon must be one of {RECON}, got {config.loss.recon!r}"
    )
    for net in ("generator", "discriminator"):
        norm = config.model[net].norm
        _require(norm in NORMS, f"model.{net}.norm must be one of {NORMS}, got {norm!r}")
    g = config.model.generator
    if g.name == "unet":
        multiple = 2**g.num_downs
        _require(
            config.image_size % multiple == 0,
            f"image_size={config.image_size} must be a multiple of 2**model.generator.num_downs"
            f" = {multiple}; change image_size or model.generator.num_downs.",
        )
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
            config.image_size >= min_size,
            f"image_size={config.image_size} is too small for a PatchGAN with "
            f"model.discriminator.n_layers={d.n_layers} (needs >= {min_size}).",
        )
    if config.data.sketch != DATASET_SKETCH:
        parse_sketch_mix(config.data.sketch)  # raises ConfigError naming data.sketch
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
    _require(
        0.0 <= config.data.val_fraction < 1.0,
        f"data.val_fraction must be in [0, 1), got {config.data.val_fraction}",
    )


def _check_resunet(config: ml_collections.ConfigDict) -> None:
    g = config.model.generator
    multiple = 2**g.num_downs
    _require(
        config.image_size % multiple == 0,
        f"image_size={config.image_size} must be a multiple of 2**model.generator.num_downs"
        f" = {multiple}; change image_size or model.generator.num_downs.",
    )
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
