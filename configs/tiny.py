"""A small CPU configuration: 64 px, narrow networks, a few hundred steps in a few minutes."""

# Flax's examples import `configs.default`; configs/ cannot be imported from a non-editable
# install or another directory, so the base is in the package (see jaxcolor/config.py).
from jaxcolor import config as base


def get_config():
    """default.py shrunk so that training visibly learns on 2 CPU cores in minutes."""
    c = base.get_config()
    c.batch_size = 16
    c.num_steps = 300
    c.image_size = 64
    c.compute_dtype = "float32"
    c.data.num_synthetic = 2_000
    c.data.num_workers = 0
    c.model.generator.num_downs = 6  # 64 px -> 1x1 bottleneck
    c.model.generator.ngf = 16
    c.model.discriminator.ndf = 16
    c.optimizer.learning_rate = 1e-3
    c.log_every = 25
    c.eval_every = 100
    c.eval_batch_size = 16
    c.eval_split_every = 300  # once, at the end: the 40 validation images
    c.checkpoint_every = 100
    return c
