"""The base configuration every config in configs/ starts from (pix2pix-256 colorization), the
network sections, and `complete`, which fills a saved config.

It lives in the package, not in configs/, so that a config file can import it wherever it runs:
config_flags execs a config file by path, and configs/ is not importable from another directory
or from a non-editable install (it is not part of the installed package). It sits above
jaxcolor.nets, not in jaxcolor.core: a network's options and their defaults are its family's
(`NetworkSpec.defaults` in jaxcolor/nets/<family>/spec.py), and the base holds only what every
run shares. A config file's argument (`configs/pod.py:tpu=v4-32`) is read by
`jaxcolor.core.config_arg.parse_arg`.
"""

from collections.abc import Mapping
from typing import Any

import ml_collections

from jaxcolor.nets import registry
from jaxcolor.nets.base import DISCRIMINATOR, GENERATOR


def generator(name: str, **options: Any) -> ml_collections.ConfigDict:
    """A `model.generator` section: the network `name` with its family's defaults, then
    `options` (one it does not have raises ConfigError naming the ones it has)."""
    return ml_collections.ConfigDict(registry.section(GENERATOR, name, **options))


def discriminator(name: str, **options: Any) -> ml_collections.ConfigDict:
    """A `model.discriminator` section, as `generator`."""
    return ml_collections.ConfigDict(registry.section(DISCRIMINATOR, name, **options))


def get_config() -> ml_collections.ConfigDict:
    """The full default configuration; every other config starts from this one."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.batch_size = 64  # global, across all devices and hosts
    c.num_steps = 100_000
    # Square side, or a (height, width) pair such as (160, 256); any type may replace the other
    # (also on the command line: --config.image_size=64 or --config.image_size='(160, 256)').
    c.image_size = ml_collections.FieldReference(256, field_type=object)
    # What the generator learns: "colorize" (sketch + hints -> colour image) or "sketch"
    # (colour image -> 1-channel sketch, e.g. configs/sketch_extractor.py).
    c.task = "colorize"
    c.compute_dtype = "bfloat16"  # activations; parameters and optimizer state stay float32
    c.init_from = ""  # PyTorch weights to start from: a .safetensors generator or an export dir

    c.data = ml_collections.ConfigDict()
    # "synthetic", "folder:/path/to/images" (recursive jpg/png/webp/bmp/tiff) or "tfds:NAME"
    # (an ArrayRecord TFDS dataset under data.data_dir, e.g. from python -m jaxcolor.prepare)
    c.data.source = "synthetic"
    c.data.data_dir = ""  # TFDS data_dir for "tfds:NAME" ("" = TFDS's default); local or gs://
    c.data.layout = "single"  # folder images: "paired" = colour left, sketch right in one file
    c.data.num_synthetic = 50_000  # size of the built-in synthetic cartoon set
    c.data.val_fraction = 0.02  # image folders: share held out for validation
    # One of xdog | sobel | highpass or a weighted mix "xdog:0.7,sobel:0.2,highpass:0.1";
    # parameters are drawn per example (see jaxcolor/data/sketch.py); "dataset" uses the real
    # sketches of paired data (data.layout="paired" or a TFDS dataset with a "sketch" feature);
    # "model:DIR" runs an exported sketch extractor (task="sketch") on device, frozen.
    c.data.sketch = "xdog"
    c.data.sketch_augment = True  # random Otsu binarisation, line thickness and intensity
    # blur | points | strokes | scribbles | palette | none (layout: jaxcolor/data/hints.py)
    c.data.hints = "blur"
    c.data.random_flip = True
    # Where sketches and hints are made from the colour crop: "host" (the Grain pipeline, on
    # the CPU), "device" (inside the jitted steps, from the step's key: the host only decodes,
    # crops and ships colour) or "auto": the device on accelerator meshes, the host on CPU
    # meshes, decided from the mesh's devices (jaxcolor/data/derive.py).
    c.data.derive = "auto"
    c.data.num_workers = 8  # Grain worker processes per host; 0 reads in the main process
    c.data.prefetch = 4  # batches buffered per worker

    c.model = ml_collections.ConfigDict()
    # The networks by name (jaxcolor/nets/registry.py) with their options, whose defaults and
    # meaning are in each family's spec: pix2pix's U-Net 256 and 70x70 PatchGAN
    # (jaxcolor/nets/pix2pix/spec.py). Another network: c.model.generator = generator(NAME).
    c.model.generator = generator("unet")
    c.model.discriminator = discriminator("patchgan")
    # pix2pix's ImagePool: D's fake half comes from the last `size` generated (condition, fake)
    # pairs with probability `prob` once the pool is full; 0 = off (D sees the current fakes).
    c.model.image_pool = ml_collections.ConfigDict()
    c.model.image_pool.size = 0
    c.model.image_pool.prob = 0.5

    c.loss = ml_collections.ConfigDict()
    c.loss.gan_mode = "vanilla"  # vanilla | lsgan | hinge | none (generator alone, no D)
    c.loss.recon = "l1"  # l1 | l2: reconstruction term against the colour image
    c.loss.recon_weight = 100.0  # pix2pix's lambda: the weight of loss.recon (L1 or L2)
    # Deep supervision (generators with aux outputs, e.g. resunet): weight of the L1 loss of each
    # intermediate RGB output against the target averaged down to its size; () = off.
    c.loss.aux_weights = ()
    # Perceptual and style losses on frozen VGG-19 features (jaxcolor/training/vgg.py), for any
    # colorizer; 0 = off. A non-zero weight needs loss.vgg_weights: torchvision's
    # vgg19-dcbb9e9d.pth, or its tensors as .safetensors/.npz (nothing is downloaded).
    c.loss.perceptual_weight = 0.0  # L1 between the feature maps of prediction and target
    c.loss.style_weight = 0.0  # L1 between their Gram matrices
    c.loss.vgg_weights = ""
    c.loss.vgg_layers = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"  # reluB_J / convB_J names
    # Hint fidelity (data.hints points | strokes | scribbles): L1 between the output and the
    # user's colour at the hinted pixels (`g_hint`); 0 = off.
    c.loss.hint_weight = 0.0
    # Structural similarity (Zhao et al. 2017, "Loss Functions for Image Restoration with Neural
    # Networks": L1 + SSIM): 1 - mean SSIM of output and target, the window of the evaluation's
    # SSIM (`g_ssim`); 0 = off.
    c.loss.ssim_weight = 0.0

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.learning_rate = 2e-4
    c.optimizer.b1 = 0.5
    c.optimizer.b2 = 0.999
    c.optimizer.decay_steps = 0  # linearly decay the lr to 0 over the last N steps; 0 = constant

    c.train = ml_collections.ConfigDict()
    c.train.on_nonfinite = "stop"  # NaN/Inf loss or gradient: "stop" the run, or "skip" the update
    c.train.max_nonfinite = 10  # with "skip": stop after this many non-finite steps in a row
    # Evaluate and export an exponential moving average of the generator's parameters with this
    # decay (e.g. 0.999; warmed up as min(decay, (1 + step) / (10 + step))); 0 = off.
    c.train.ema_decay = 0.0

    c.log_every = 100
    c.eval_every = 2_000
    c.eval_batch_size = 16  # the fixed validation batch; a multiple of the device count
    # Mean L1/PSNR/SSIM over the whole validation split (eval_val/* in TensorBoard) every N
    # steps and at the end; 0 = off. The same numbers as python -m jaxcolor.evaluate.
    c.eval_split_every = 10_000
    c.eval_max_images = 2_000  # cap per split evaluation; 0 = every validation image
    c.checkpoint_every = 2_000
    c.keep_checkpoints = 3
    # JAX persistent compilation cache: "auto" = WORKDIR/compile_cache (gs:// works), so a
    # restart after preemption skips recompiling; a path to share one; "" = off.
    c.compile_cache_dir = "auto"

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # devices on the `data` axis; -1 = all devices of all hosts

    # A jax.profiler trace of steps start_step .. start_step + num_steps - 1 on process 0, into
    # WORKDIR/tensorboard (TensorBoard's Profile tab); num_steps = 0 = off.
    c.profile = ml_collections.ConfigDict()
    c.profile.start_step = 10  # past the first steps' compilation and warm-up
    c.profile.num_steps = 0
    return c


def complete(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A config that comes back (a checkpoint's metadata, an older run's config) as a plain
    dict with every key this jaxcolor reads: what `saved` lacks takes the base's value, and
    each network section its own family's defaults (`registry.complete`). Keys the base does
    not know are kept. Called once where a config is read back, so that code reads
    `config.loss.hint_weight` with no default of its own."""
    out = _merged(get_config().to_dict(), saved)
    for role in (GENERATOR, DISCRIMINATOR):  # not the base's pix2pix options under another name
        out["model"][role] = registry.complete(role, saved["model"][role])
    return out


def _merged(base: dict[str, Any], saved: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in saved.items():
        both = isinstance(value, Mapping) and key in base and isinstance(base[key], dict)
        out[key] = _merged(base[key], value) if both else value
    return out
