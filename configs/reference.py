"""Reference-guided sketch colorization (seed 002), 256 px.

A colour-style encoder (stem conv, 4 ResNet blocks, global average pooling -> 256-d code) reads
a *reference* colour image; a pix2pix U-Net over the sketch colours it, its decoder modulated by
the code (AdaIN: instance norm, then per-channel scale and shift predicted from the code);
a multi-scale discriminator (pix2pixHD: PatchGANs on the image at 1x, 1/2, 1/4) judges it.
Training references are another random crop (60-90 % of the short side), scale and flip of the
target itself; validation uses the target's own view ("paired" reference).

The seed's fine-tune variant (four codes, one from each style block, fused into four decoder
blocks): --config.model.generator.style_codes=4. Automatic colorization from the sketch and the
reference alone, as in the seed (data.hints="none"); any hint method can be added on top.
The seed trains on the Kaggle "Anime Sketch Colorization Pair" images (colour left, sketch
right, 14,224 for training, 100 epochs ~ 22k steps at batch 64):
  --config.data.source=folder:/path/to/train --config.data.layout=paired
  --config.data.sketch=dataset

Losses: L1 (weight 100) + adversarial (mean over the three scales). Left out, as the seed's
paper uses them but they need pretrained VGG weights that nothing here may download: the
perceptual and style losses. Also left out: the colorization network's extra lower-resolution
outputs (the seed's "multi-scale output images"); the generator returns the full-size image.

Parameters at full size (256 px, hints none: 1 input channel), checked by
tests/test_reference_model.py:
  generator      58,166,147  (style_codes=1: U-Net 54,409,411, style encoder 2,473,792,
                              AdaIN projections 1,282,944)
  generator      57,320,835  (style_codes=4: AdaIN projections 436,096)
  discriminator   8,297,283  (3 scales x 2,765,761)

Train with:  python -m jaxcolor.train --config configs/reference.py --workdir DIR
Colorize an export:  python -m jaxcolor.colorize --model EXPORT --sketch S.png --reference R.png
  --out O.png   (the exported generator is forward(condition, reference); see config.json)
"""

# Flax's examples import `configs.default`; configs/ cannot be imported from a non-editable
# install or another directory, so the base is in the package (see jaxcolor/core/config.py).
from jaxcolor.core import config as base


def get_config():
    """default.py with the reference-guided generator and the multi-scale discriminator."""
    c = base.get_config()
    c.num_steps = 22_225  # the seed's 100 epochs of 14,224 images at batch 64
    c.data.hints = "none"  # the seed colours from the sketch and the reference alone

    g = c.model.generator
    g.name = "reference_unet"
    g.style_width = 64  # style blocks 64, 128, 256, 256 wide
    g.style_dim = 256  # the seed's 256-d colour style code
    g.style_codes = 1  # 4: the seed's fine-tune variant, one code per style block

    d = c.model.discriminator
    d.name = "multiscale_patchgan"
    d.num_scales = 3  # 1x, 1/2, 1/4
    d.norm = "instance"  # as pix2pixHD's multi-scale discriminator
    return c
