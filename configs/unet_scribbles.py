"""A classic U-Net on grayscale Sobel sketch + RGB scribbles -> colour, MSE: the UAN anime-style
image coloriser (github.com/vrobbin3247/UAN-based-anime-style-image-coloriser).

Its network: a Ronneberger U-Net with double 3x3 conv + ReLU blocks
64-128-256-512, a 1024 bottleneck, 2x2 max-pool down, 2x2 stride-2 transposed-conv up, 1x1
output conv and tanh, no normalisation; 4 input channels = the grayscale sketch plus the RGB
scribble image (`data.hints = "scribbles"`: colour strokes on white paper, no mask channel);
Sobel edge sketches; MSE loss, no discriminator; Adam lr 1e-4 (PyTorch's default betas);
160x256 (height x width) images, batch 16.

Parameters: generator 31,032,451 (no discriminator), checked by tests/test_classic_models.py.

Train with:  python -m jaxcolor.train --config configs/unet_scribbles.py --workdir DIR
(another size: --config.image_size='(192, 320)'; a square one: --config.image_size=256).
On a Cloud TPU slice: configs/unet_scribbles.py:tpu=TYPE (e.g. :tpu=v6e-8) sizes the batch, learning
rate and step counts for it as configs/pod.py does (jaxcolor/core/slice_sizing.py), from
MAX_PER_CHIP_BATCH below.
"""

# Flax's examples import `configs.default`; configs/ cannot be imported from a non-editable
# install or another directory, so the base is in the package (see jaxcolor/config.py).
from jaxcolor import config as base
from jaxcolor.core import slice_sizing
from jaxcolor.core.config_arg import parse_arg

# Largest per-chip batch of this config's train step (bf16) that the TPU compiler fits
# (benchmarks/results/aot-search-unet_scribbles-v5litepod-8.json). Other chips: scaled by
# pix2pix's measured ratio between the chips (jaxcolor/core/slice_sizing.py).
MAX_PER_CHIP_BATCH = {"v5litepod": 216}


def get_config(arg: str = ""):
    """default.py with the UAN coloriser's network, inputs, loss and optimizer; sized for a Cloud
    TPU slice by its accelerator type (`configs/unet_scribbles.py:tpu=v4-32`)."""
    accelerator = parse_arg(arg, "configs/unet_scribbles.py", tpu="").tpu
    c = base.get_config()
    c.batch_size = 16
    c.image_size = (160, 256)  # height, width: each a multiple of 2**num_downs = 16
    c.data.sketch = "sobel"
    c.data.hints = "scribbles"  # 3 channels: with the sketch, its 4-channel input

    c.model.generator = base.generator("classic_unet")
    g = c.model.generator
    g.num_downs = 4  # 4 max-pools: 64-128-256-512 blocks, 1024 bottleneck
    g.ngf = 64
    g.norm = "none"
    g.dropout = 0.0
    g.out_channels = 3

    c.loss.gan_mode = "none"
    c.loss.recon = "l2"  # MSE
    c.loss.recon_weight = 1.0  # the loss is the plain MSE
    c.optimizer.learning_rate = 1e-4
    c.optimizer.b1 = 0.9  # torch.optim.Adam's defaults
    c.optimizer.b2 = 0.999
    if accelerator:  # configs/unet_scribbles.py:tpu=TYPE, a Cloud TPU slice
        slice_sizing.for_slice(
            c, accelerator, MAX_PER_CHIP_BATCH, option="configs/unet_scribbles.py:tpu"
        )
    return c
