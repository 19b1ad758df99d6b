"""Reference-guided sketch colorization, 256 px: Liu et al. 2022, "Reference-guided
structure-aware deep sketch colorization for cartoons" (Computational Visual Media), as its
unofficial PyTorch implementation trains it ("the implementation" below).

A colour-style encoder (stem conv, 4 ResNet blocks, global average pooling -> 256-d code) reads
a *reference* colour image; a pix2pix U-Net over the sketch colours it, its decoder modulated by
the code (AdaIN: instance norm, then per-channel scale and shift predicted from the code);
a multi-scale discriminator (pix2pixHD: PatchGANs on the image at 1x, 1/2, 1/4) judges it.
Training references are another random crop (60-90 % of the short side), scale and flip of the
target itself; validation uses the target's own view ("paired" reference).

The implementation's fine-tune variant (four codes, one from each style block, fused into four
decoder blocks): --config.model.generator.style_codes=4. Automatic colorization from the sketch
and the reference alone, as in the paper (data.hints="none"); any hint method can be added on
top. The implementation trains on the Kaggle "Anime Sketch Colorization Pair" images (colour
left, sketch right, 14,224 for training, 100 epochs ~ 22k steps at batch 64):
  --config.data.source=folder:/path/to/train --config.data.layout=paired
  --config.data.sketch=dataset

Multi-scale outputs (the paper's "multi-scale output images"): RGB heads at the decoder's 1/2
and 1/4 levels (model.generator.num_aux=2), each trained with L1 against the target averaged
down to its size (loss.aux_weights=(50, 25): half the weight per halving, as
configs/resunet_palette.py's deep supervision). The export keeps them; forward(condition,
reference) returns only the final image.

Losses: L1 (weight 100) + the two multi-scale L1 terms + adversarial (mean over the three
scales); with VGG-19 weights also the perceptual (0.01) and style (50) losses on
relu1_1..relu5_1, each summed over the layers (the weights and layers of the PyTorch
reference-guided colorization code this design follows; the paper's own values were not at
hand). Nothing downloads the VGG weights: pass torchvision's vgg19-dcbb9e9d.pth
(https://download.pytorch.org/models/vgg19-dcbb9e9d.pth, or its tensors as .safetensors/.npz)
as the config's argument `vgg=`, which turns both losses on:
  python -m jaxcolor.train --config configs/reference.py:vgg=/path/to/vgg19-dcbb9e9d.pth
(the path alone, configs/reference.py:/path/to/vgg19-dcbb9e9d.pth, also works).

Parameters at full size (256 px, hints none: 1 input channel), checked by
tests/test_reference_model.py:
  generator      58,167,305  (style_codes=1: U-Net 54,409,411, style encoder 2,473,792,
                              AdaIN projections 1,282,944, multi-scale heads 1,158)
  generator      57,321,993  (style_codes=4: AdaIN projections 436,096)
  discriminator   8,297,283  (3 scales x 2,765,761)

On a Cloud TPU slice: configs/reference.py:tpu=TYPE (e.g. :tpu=v5litepod-8), or
:tpu=TYPE,vgg=PATH with the VGG file, sizes the batch, learning rate and step counts for it as
configs/pod.py does
(jaxcolor/core/slice_sizing.py), from MAX_PER_CHIP_BATCH (_VGG with the file) below.

Train with:  python -m jaxcolor.train --config configs/reference.py --workdir DIR
Colorize an export:  python -m jaxcolor.colorize --model EXPORT --sketch S.png --reference R.png
  --out O.png   (the exported generator is forward(condition, reference); see config.json)
"""

# Flax's examples import `configs.default`; configs/ cannot be imported from a non-editable
# install or another directory, so the base is in the package (see jaxcolor/config.py).
from jaxcolor import config as base
from jaxcolor.core import slice_sizing
from jaxcolor.core.config_arg import parse_arg

# Weights of the VGG-19 losses (each a sum over relu1_1, relu2_1, ..., relu5_1).
PERCEPTUAL_WEIGHT, STYLE_WEIGHT = 0.01, 50.0
# Largest per-chip batch of this config's train step (bf16) that the TPU compiler fits, without
# and with the VGG-19 losses (benchmarks/results/aot-search-reference-novgg-v5litepod-8.json,
# aot-search-reference-v5litepod-8.json: VGG-19 at 256 px on G's output and the target is 2.2x
# the step's FLOPs, and a quarter of the batch fits). Other chips: scaled by pix2pix's measured
# ratio between the chips (jaxcolor/core/slice_sizing.py).
MAX_PER_CHIP_BATCH = {"v5litepod": 608}
MAX_PER_CHIP_BATCH_VGG = {"v5litepod": 128}


def get_config(arg: str = ""):
    """default.py with the reference-guided generator and the multi-scale discriminator. The
    argument (`--config configs/reference.py:vgg=PATH,tpu=TYPE`, either or both) names a
    VGG-19 weights file, which adds the perceptual and style losses, and a Cloud TPU
    accelerator type (`v4-32`) to size the config for that slice."""
    arg = parse_arg(arg, "configs/reference.py", vgg="", tpu="")
    accelerator, vgg_weights = arg.tpu, arg.vgg
    c = base.get_config()
    c.num_steps = 22_225  # the implementation's 100 epochs of 14,224 images at batch 64
    c.data.hints = "none"  # the paper colours from the sketch and the reference alone

    c.model.generator = base.generator("reference_unet")  # jaxcolor/nets/reference/spec.py
    g = c.model.generator
    g.style_width = 64  # style blocks 64, 128, 256, 256 wide
    g.style_dim = 256  # the paper's 256-d colour style code
    g.style_codes = 1  # 4: the implementation's fine-tune variant, one code per style block
    g.num_aux = 2  # multi-scale outputs at 1/2 and 1/4 resolution
    c.loss.aux_weights = (50.0, 25.0)
    if vgg_weights:
        c.loss.vgg_weights = vgg_weights
        c.loss.perceptual_weight, c.loss.style_weight = PERCEPTUAL_WEIGHT, STYLE_WEIGHT

    c.model.discriminator = base.discriminator("multiscale_patchgan")
    d = c.model.discriminator
    d.num_scales = 3  # 1x, 1/2, 1/4
    d.norm = "instance"  # as pix2pixHD's multi-scale discriminator
    if accelerator:  # configs/reference.py:tpu=TYPE, a Cloud TPU slice
        measured = MAX_PER_CHIP_BATCH_VGG if vgg_weights else MAX_PER_CHIP_BATCH
        slice_sizing.for_slice(c, accelerator, measured, option="configs/reference.py:tpu")
    return c
