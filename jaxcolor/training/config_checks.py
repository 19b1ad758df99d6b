"""Up-front config validation: each message names the key and the fix."""

from __future__ import annotations

import ml_collections

from jaxcolor.core.image_size import describe, image_hw
from jaxcolor.data import derive
from jaxcolor.data.decode import LAYOUTS
from jaxcolor.data.hints import HINT_CHANNELS, pixel_methods
from jaxcolor.data.sketch import DATASET_SKETCH, is_model_sketch, parse_sketch_mix
from jaxcolor.nets import registry
from jaxcolor.nets.base import COMPUTE_DTYPES, DISCRIMINATOR, GENERATOR, NORMS, require
from jaxcolor.training import vgg
from jaxcolor.training.losses import GAN_MODES, RECON, SSIM_WINDOW
from jaxcolor.training.step import ON_NONFINITE

TASKS = ("colorize", "sketch")


def _check_task(config: ml_collections.ConfigDict) -> None:
    task = config.task
    require(task in TASKS, f"task must be one of {TASKS}, got {task!r}")
    model_sketch = is_model_sketch(config.data.sketch)
    if task == "sketch":
        out = config.model.generator.out_channels
        require(
            out == 1,
            f"task='sketch' learns a 1-channel sketch; set model.generator.out_channels=1 "
            f"(got {out}).",
        )
        require(
            config.data.hints == "none",
            f"task='sketch' takes the colour image alone; set data.hints='none' (got "
            f"{config.data.hints!r}).",
        )
        require(
            not model_sketch,
            "task='sketch' learns its targets from data.sketch; a sketch model "
            f"(data.sketch={config.data.sketch!r}) cannot be its own target: use e.g. 'xdog'.",
        )
    if model_sketch:
        from jaxcolor.training import sketcher  # reads the export's config.json only

        sketcher.read_export(config)


def _networks(config: ml_collections.ConfigDict) -> list:
    """The specs of the networks this config trains (the discriminator only with a GAN loss);
    ConfigError listing the known names for an unknown one."""
    nets = [registry.lookup(GENERATOR, config.model.generator.name)]
    if config.loss.gan_mode != "none":
        nets.append(registry.lookup(DISCRIMINATOR, config.model.discriminator.name))
    return nets


def _check_options(config: ml_collections.ConfigDict, role: str) -> None:
    """The network's section holds its own options only (not another family's, e.g. after
    --config.model.generator.name=resunet on a U-Net config)."""
    arch = config.model[role]
    unknown = registry.unknown_options(role, arch)
    options = registry.spec_of(role, arch).defaults
    require(
        not unknown,
        f"model.{role}.name={arch.name!r} takes no option {', '.join(unknown)}; its options are "
        f"{', '.join(options)}: start model.{role} from jaxcolor.config.{role}({arch.name!r}) "
        "in the config file.",
    )


def validate(config: ml_collections.ConfigDict, *, weights_files: bool = True) -> None:
    """Raises ConfigError for a config that would fail (or silently misbehave) later.

    `weights_files=False` skips the check that the files of frozen networks' weights
    (loss.vgg_weights) exist: for compiling with their shapes only (bench aot)."""
    image_hw(config)  # raises ConfigError naming image_size for a malformed value
    _check_ssim_loss(config)  # before the families' size rules: it names its own key
    require(
        config.loss.gan_mode in GAN_MODES,
        f"loss.gan_mode must be one of {GAN_MODES}, got {config.loss.gan_mode!r}",
    )
    networks = _networks(config)  # every later rule reads the options of these networks
    for key in ("num_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
        require(config[key] >= 1, f"{key} must be >= 1, got {config[key]}")
    require(
        config.compute_dtype in COMPUTE_DTYPES,
        f"compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, got {config.compute_dtype!r}",
    )
    require(
        config.loss.recon in RECON, f"loss.recon must be one of {RECON}, got {config.loss.recon!r}"
    )
    for net in ("generator", "discriminator"):
        norm = config.model[net].norm
        require(norm in NORMS, f"model.{net}.norm must be one of {NORMS}, got {norm!r}")
    for spec in networks:
        _check_options(config, spec.role)
        spec.check(config)  # the family's own rules
    _check_deep_supervision_and_pool(config)
    _check_perceptual(config, weights_files)
    _check_profile(config)
    if config.data.sketch != DATASET_SKETCH and not is_model_sketch(config.data.sketch):
        parse_sketch_mix(config.data.sketch)  # raises ConfigError naming data.sketch
    _check_task(config)
    require(
        config.data.layout in LAYOUTS,
        f"data.layout must be one of {LAYOUTS}, got {config.data.layout!r}",
    )
    require(
        config.data.hints in HINT_CHANNELS,
        f"data.hints must be one of {sorted(HINT_CHANNELS)}, got {config.data.hints!r}",
    )
    derive.check(config)  # data.derive, and device forms for 'device'
    require(
        config.train.on_nonfinite in ON_NONFINITE,
        f"train.on_nonfinite must be one of {ON_NONFINITE}, got {config.train.on_nonfinite!r}",
    )
    require(
        config.train.max_nonfinite >= 1,
        f"train.max_nonfinite must be >= 1, got {config.train.max_nonfinite}",
    )
    ema = config.train.ema_decay
    require(
        0.0 <= ema < 1.0,
        f"train.ema_decay must be in [0, 1) (0 = off; e.g. 0.999 averages the generator over "
        f"about the last 1,000 steps), got {ema}",
    )
    _check_hint_loss(config)
    for key in ("eval_split_every", "eval_max_images"):
        require(config[key] >= 0, f"{key} must be >= 0 (0 = off / all images), got {config[key]}")
    require(
        0.0 <= config.data.val_fraction < 1.0,
        f"data.val_fraction must be in [0, 1), got {config.data.val_fraction}",
    )


def _check_perceptual(config: ml_collections.ConfigDict, weights_files: bool) -> None:
    perceptual, style = vgg.perceptual_weights(config)
    for key, w in (("perceptual_weight", perceptual), ("style_weight", style)):
        require(w >= 0, f"loss.{key} must be >= 0 (0 = off), got {w}")
    layers = vgg.parse_layers(config.loss.vgg_layers)
    if not vgg.uses_vgg(config):
        return
    if weights_files:
        vgg.check_weights_file(config)
    out = config.model.generator.out_channels
    require(
        config.task == "colorize" and out == 3,
        f"loss.perceptual_weight / loss.style_weight compare RGB images through VGG-19; they "
        f"need task='colorize' and model.generator.out_channels=3 (got "
        f"{config.task!r}, {out}); set both weights to 0.",
    )
    pools = vgg.pools_before(layers)
    require(
        min(image_hw(config)) >= 2**pools,
        f"image_size={describe(config.image_size)} is too small for loss.vgg_layers={layers} "
        f"({pools} max pools before the deepest; needs >= {2**pools} px); use shallower layers.",
    )


def _check_hint_loss(config: ml_collections.ConfigDict) -> None:
    weight, hints = config.loss.hint_weight, config.data.hints
    require(weight >= 0, f"loss.hint_weight must be >= 0 (0 = off), got {weight}")
    require(
        weight == 0 or hints in pixel_methods(),
        f"loss.hint_weight={weight} compares the output with the hint colours at the hinted "
        f"pixels, which data.hints={hints!r} does not mark; use data.hints in "
        f"{pixel_methods()} or set loss.hint_weight=0.",
    )


def _check_ssim_loss(config: ml_collections.ConfigDict) -> None:
    weight = config.loss.ssim_weight
    require(weight >= 0, f"loss.ssim_weight must be >= 0 (0 = off), got {weight}")
    if weight:
        require(
            min(image_hw(config)) >= SSIM_WINDOW,
            f"loss.ssim_weight needs images of at least {SSIM_WINDOW} px per side (its "
            f"window); image_size={describe(config.image_size)}: raise image_size or set "
            "loss.ssim_weight=0.",
        )


def _check_profile(config: ml_collections.ConfigDict) -> None:
    profile = config.profile
    require(
        profile.num_steps >= 0,
        f"profile.num_steps must be >= 0 (0 = no profile), got {profile.num_steps}",
    )
    require(
        profile.num_steps == 0 or profile.start_step >= 1,
        f"profile.start_step must be >= 1 (the first step is 1), got {profile.start_step}",
    )


def _check_deep_supervision_and_pool(config: ml_collections.ConfigDict) -> None:
    weights = tuple(config.loss.aux_weights)
    if any(w != 0 for w in weights):
        g = config.model.generator
        spec = registry.generator(g)
        with_aux = " or ".join(
            f"model.generator.name={n!r}"
            for n in registry.names(GENERATOR)
            if registry.lookup(GENERATOR, n).num_aux is not None
        )
        require(
            spec.num_aux is not None,
            f"loss.aux_weights={weights} needs a generator with deep-supervision outputs "
            f"({with_aux}), not {g.name!r}; set loss.aux_weights=().",
        )
        num_aux = spec.num_aux(g)
        require(
            len(weights) == num_aux,
            f"loss.aux_weights has {len(weights)} weights but model.generator.num_aux="
            f"{num_aux}; give one weight per aux output.",
        )
        require(all(w >= 0 for w in weights), f"loss.aux_weights must be >= 0, got {weights}")
    pool = config.model.image_pool
    require(pool.size >= 0, f"model.image_pool.size must be >= 0 (0 = off), got {pool.size}")
    require(0.0 <= pool.prob <= 1.0, f"model.image_pool.prob must be in [0, 1], got {pool.prob}")
    require(
        pool.size == 0 or config.loss.gan_mode != "none",
        "model.image_pool.size > 0 needs a discriminator; set model.image_pool.size=0 with "
        "loss.gan_mode='none'.",
    )
