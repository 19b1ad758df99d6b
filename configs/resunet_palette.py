"""Residual attention U-Net with palette hints at 512 px: Chen et al. 2019, "Automatic
Colorization of Anime Sketch Image with Enhanced Residual U-net and Auxiliary Classifier GAN".

Generator `resunet` (jaxcolor/nets/resunet/): residual down/up blocks, attention gates on the
skips, widths 64-128-256-512 and a 1024 bottleneck (num_downs 4: 512 px -> 32 x 32), tanh out,
two deep-supervision RGB heads (1/2 and 1/4 resolution) trained with L1 against the target
averaged down to their size (loss.aux_weights). Input: the sketch ++ the 12 `palette` planes
(top-4 colours of 4 horizontal bands) = 13 channels. Discriminator: the 70x70 PatchGAN
(n_layers 3, ndf 64) on concat(input, RGB) = 16 channels, fed through pix2pix's image pool of
the last 50 fake pairs (swap probability 0.5). lambda (loss.recon_weight) 100, Adam lr 2e-4,
beta1 0.5.

Parameters at full size (checked by tests/test_resunet.py with eval_shape):
  generator 34,184,845 (34,183,687 without the two aux heads), discriminator 2,778,945.
Image pool: 50 x 512 x 512 x 16 uint8 = 210 MB per device (replicated).

Chen et al. trained on Kaggle's anime-sketch-colorization-pair (colour left, sketch right):
  python -m jaxcolor.train --config configs/resunet_palette.py --workdir DIR \\
    --config.data.source=folder:/path/to/data/train --config.data.layout=paired \\
    --config.data.sketch=dataset
Automatic colorization (no hints): --config.data.hints=none.
On a Cloud TPU slice: configs/resunet_palette.py:tpu=TYPE (e.g. :tpu=v5litepod-8) sizes the batch,
learning rate and step counts for it as configs/pod.py does (jaxcolor/core/slice_sizing.py), from
MAX_PER_CHIP_BATCH below.
"""

# Flax's examples import `configs.default`; configs/ cannot be imported from a non-editable
# install or another directory, so the base is in the package (see jaxcolor/config.py).
from jaxcolor import config as base
from jaxcolor.core import slice_sizing
from jaxcolor.core.config_arg import parse_arg

# Largest per-chip batch of this config's train step (bf16, 512 px) that the TPU compiler fits
# (benchmarks/results/aot-search-resunet_palette-v5litepod-8.json). Other chips: scaled by
# pix2pix's measured ratio between the chips (jaxcolor/core/slice_sizing.py).
MAX_PER_CHIP_BATCH = {"v5litepod": 16}


def get_config(arg: str = ""):
    """default.py with the residual attention U-Net, palette hints, 512 px and an image pool;
    sized for a Cloud TPU slice by its accelerator type (`configs/resunet_palette.py:tpu=v4-32`)."""
    accelerator = parse_arg(arg, "configs/resunet_palette.py", tpu="").tpu
    c = base.get_config()
    c.image_size = 512
    # Chen et al. used batch 4 on one GPU; 16 keeps BatchNorm statistics sane and divides 8 or 16
    # devices. 15 of their epochs over its 14,224 training pairs at batch 16.
    c.batch_size = 16
    c.num_steps = 13_500
    c.data.hints = "palette"

    c.model.generator = base.generator("resunet")  # jaxcolor/nets/resunet/spec.py
    g = c.model.generator
    g.num_downs = 4
    g.ngf = 64
    g.max_mult = 16  # widths ngf * min(2**level, max_mult): 64 ... 1024
    g.norm = "batch"
    g.num_aux = 2  # deep-supervision heads at 1/2 and 1/4 resolution
    c.model.discriminator.name = "patchgan"
    c.model.discriminator.n_layers = 3  # 70x70
    c.model.image_pool.size = 50
    c.model.image_pool.prob = 0.5

    c.loss.gan_mode = "vanilla"
    c.loss.recon_weight = 100.0
    # Absolute weights of the L1 losses of the 1/2 and 1/4 resolution outputs (the final one
    # has recon_weight): half and a quarter of lambda, the coarser output counting less.
    c.loss.aux_weights = (50.0, 25.0)
    c.optimizer.learning_rate = 2e-4
    c.optimizer.b1 = 0.5
    if accelerator:  # configs/resunet_palette.py:tpu=TYPE, a Cloud TPU slice
        slice_sizing.for_slice(
            c, accelerator, MAX_PER_CHIP_BATCH, option="configs/resunet_palette.py:tpu"
        )
    return c
