"""A U-Net that learns colour -> 1-channel sketch from XDoG targets, for
`data.sketch = "model:<export dir>"`.

As the "Animation-to-Sketch with U-Net" project builds it: a Ronneberger U-Net (milesial's
Pytorch-UNet `DoubleConv`: conv 3x3 -> BatchNorm -> ReLU twice; 64-128-256-512, 1024 bottleneck,
max-pool down, 2x2 transposed-conv up, 1x1 output) trained on XDoG sketches made with one fixed set
of parameters, with L1 loss and dropout against over-fitting; no hints, no discriminator. Dropout
sits where the original U-Net has it, at the end of the contracting path (p 0.5). That project
trains with SGD (lr 1e-3, momentum 0.9); jaxcolor's optimizer is Adam (lr 1e-4 here).

Parameters: generator 31,037,633 (no discriminator), checked by tests/test_classic_models.py.

Train, export, then colorize with its sketches:
  python -m jaxcolor.train --config configs/sketch_extractor.py --workdir runs/sketcher
  python -m jaxcolor.export --workdir runs/sketcher --out exports/sketcher
  python -m jaxcolor.train --config configs/default.py --workdir runs/color \\
      --config.data.sketch=model:exports/sketcher
"""

# Flax's examples import `configs.default`; configs/ cannot be imported from a non-editable
# install or another directory, so the base is in the package (see jaxcolor/config.py).
from jaxcolor import config as base


def get_config():
    """default.py turned around: the colour image in, its sketch out."""
    c = base.get_config()
    c.task = "sketch"
    c.batch_size = 16
    c.image_size = 256
    c.data.sketch = "xdog_fixed"  # the targets: XDoG with one fixed parameter set
    c.data.sketch_augment = False  # clean targets
    c.data.hints = "none"

    c.model.generator = base.generator("classic_unet")
    g = c.model.generator
    g.num_downs = 4
    g.ngf = 64
    g.norm = "batch"
    g.dropout = 0.5
    g.out_channels = 1

    c.loss.gan_mode = "none"
    c.loss.recon = "l1"
    c.loss.recon_weight = 1.0
    c.optimizer.learning_rate = 1e-4
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    return c
