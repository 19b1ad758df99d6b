"""pix2pix-256 colorization (U-Net 256 + 70x70 PatchGAN) sized for an accelerator.

Train with:  python -m jaxcolor.train --config configs/default.py --workdir DIR

The values and their comments are in jaxcolor/config.py, the base every config builds on,
and for the networks' options in jaxcolor/nets/pix2pix/spec.py.
"""

import ml_collections

from jaxcolor import config as base


def get_config() -> ml_collections.ConfigDict:
    """The full default configuration (jaxcolor.config's)."""
    return base.get_config()
