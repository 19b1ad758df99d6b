"""pix2pix-256 for a TPU pod slice (e.g. v4-32, v5p-64): the global batch follows the chip count.

The chip count comes after the file name (config files are read before JAX starts):
    python -m jaxcolor.train --config configs/pod.py:16 --workdir gs://BUCKET/RUN   # v4-32
launch/train.sh passes it for the slice's --type and starts every host at once.

Scaling with the slice (data parallelism: every chip holds the whole model):
- batch_size: PER_CHIP_BATCH x chips, so each chip's share (and its speed) stays the same.
- optimizer.learning_rate: pix2pix's 2e-4 is tuned for small batches; scale it with the square
  root of (batch_size / 64) (Adam; the linear rule is usually too aggressive for GANs), capped
  at MAX_LR. Watch d_real / d_fake: D winning outright means the lr is too high.
- num_steps, eval_every, checkpoint_every: in steps, each of which now sees batch_size images;
  the values below keep the number of images per run, evaluation and checkpoint as in
  configs/default.py (batch 64), so a larger slice saves and evaluates as often in wall time
  only if it is proportionally faster. On spot capacity, lower checkpoint_every: a preemption
  loses at most checkpoint_every steps (a SIGTERM itself always saves).
"""

import math

# Flax's examples import `configs.default`; configs/ cannot be imported from a non-editable
# install or another directory, so the base is in the package (see jaxcolor/core/config.py).
from jaxcolor.core import config as base

PER_CHIP_BATCH = 8
MAX_LR = 1e-3
DEFAULT_BATCH = 64  # configs/default.py, whose step counts this config rescales


def _per_images(steps_at_default_batch: int, batch_size: int) -> int:
    return max(1, round(steps_at_default_batch * DEFAULT_BATCH / batch_size))


def get_config(chips: str = ""):
    """default.py with the global batch, learning rate and step counts scaled to `chips`."""
    if not str(chips).isdigit() or int(chips) < 1:
        raise ValueError(
            f"configs/pod.py needs the number of chips (JAX devices) of the slice, got {chips!r}:"
            " --config=configs/pod.py:16 for a v4-32 (v4/v5p names count 2 cores per chip),"
            " configs/pod.py:8 for a v5litepod-8 or v6e-8."
        )
    chips = int(chips)
    c = base.get_config()
    c.batch_size = PER_CHIP_BATCH * chips
    c.compute_dtype = "bfloat16"
    c.optimizer.learning_rate = min(MAX_LR, 2e-4 * math.sqrt(c.batch_size / DEFAULT_BATCH))
    c.num_steps = _per_images(100_000, c.batch_size)
    c.eval_every = _per_images(2_000, c.batch_size)
    c.checkpoint_every = _per_images(2_000, c.batch_size)
    c.log_every = max(10, _per_images(100, c.batch_size))
    # The smallest multiple of the chip count >= default.py's 16: it must split over the mesh.
    c.eval_batch_size = -(-16 // chips) * chips
    c.data.num_workers = 16  # Grain workers per host: TPU VM hosts have 100+ vCPUs
    return c
