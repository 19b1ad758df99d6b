"""pix2pix-256 for a Cloud TPU slice: the per-chip batch follows the chip, the global batch
the slice.

The slice's accelerator type (or its chip count) comes after the file name (config files are
read before JAX starts):
    python -m jaxcolor.train --config configs/pod.py:v4-32 --workdir gs://BUCKET/RUN
launch/train.sh passes its --type and starts every host at once.

Scaling with the slice (data parallelism: every chip holds the whole model):
- batch_size: PER_CHIP_BATCH[chip] x chips, at most MAX_GLOBAL_BATCH (README, "Sizing for a TPU
  slice", has the measurements). PER_CHIP_BATCH is the largest power of two at most 3/4 of the
  largest per-chip batch the TPU compiler fits (`python -m jaxcolor.bench aot --search`). The
  margin is in images, not bytes: XLA rematerialises to fit, so the peak is near HBM well below
  the limit (13.8 of 15.75 GiB at 512 on a v5e, whose limit is 792 to 815); a quarter of the
  batch spare leaves room for an image pool, a larger eval batch or another compiler version.
  MAX_GLOBAL_BATCH is the training reason for less: default.py's 6.4M images are then still
  1,563 updates, and no pix2pix-style GAN is known to train well at a larger batch. A bare chip
  count (configs/pod.py:16) keeps LEGACY_PER_CHIP_BATCH, as the chip is then unknown.
- optimizer.learning_rate: pix2pix's 2e-4 is tuned for small batches; scale it with the square
  root of (batch_size / 64) (Adam; the linear rule is usually too aggressive for GANs), capped
  at MAX_LR. Watch d_real / d_fake: D winning outright means the lr is too high.
- BatchNorm: the batch is sharded over the chips but the statistics are the global batch's
  (GSPMD reduces over the mesh), so at these batches they are accurate estimates and the
  running averages used for evaluation match them; pix2pix's batch 1 made BatchNorm an
  instance norm. model.*.norm="instance" keeps that per-image behaviour at any batch.
- num_steps, eval_every, checkpoint_every: in steps, each of which now sees batch_size images;
  the values below keep the number of images per run, evaluation and checkpoint as in
  configs/default.py (batch 64), so a larger slice saves and evaluates as often in wall time
  only if it is proportionally faster. On spot capacity, lower checkpoint_every: a preemption
  loses at most checkpoint_every steps (a SIGTERM itself always saves).
"""

import math

# Flax's examples import `configs.default`; configs/ cannot be imported from a non-editable
# install or another directory, so the base is in the package (see jaxcolor/core/config.py).
from jaxcolor.core import accelerators
from jaxcolor.core import config as base

# v5e: measured here (benchmarks/results/aot-pod-v5litepod-8.json: 792 fits, 816 does not).
# v6e and v5p: by the same rule from the measurement with the same compiler (largest
# fits ~1376 and ~5376). v4: measured here (aot-search-v4-32.json: 1624 fits, 1680 does not).
# MAX_GLOBAL_BATCH overrides
# them on slices of more than 4096 / PER_CHIP_BATCH chips (every v5p slice: 1024 on a v5p-8).
PER_CHIP_BATCH = {"v5litepod": 512, "v6e": 1024, "v4": 1024, "v5p": 2048}
MAX_GLOBAL_BATCH = 4096
LEGACY_PER_CHIP_BATCH = 8
MAX_LR = 1e-3
DEFAULT_BATCH = 64  # configs/default.py, whose step counts this config rescales


def _per_images(steps_at_default_batch: int, batch_size: int) -> int:
    return max(1, round(steps_at_default_batch * DEFAULT_BATCH / batch_size))


def batch_for(accelerator: str) -> tuple[int, int]:
    """Accelerator type ("v5p-64") or chip count ("16") -> (chips, global batch size)."""
    if str(accelerator).isdigit() and int(accelerator) >= 1:
        return int(accelerator), LEGACY_PER_CHIP_BATCH * int(accelerator)
    if not accelerator:
        raise ValueError(
            "configs/pod.py needs the slice's accelerator type (or its chip count): "
            "--config=configs/pod.py:v4-32 or configs/pod.py:v5litepod-8 (configs/pod.py:16 for "
            "a v4-32 by chips: v4/v5p names count 2 cores per chip)."
        )
    try:
        target = accelerators.slice_of(accelerator, option="configs/pod.py:TYPE")
    except ValueError as e:  # config_flags shows a config file's ValueError as one line
        raise ValueError(str(e)) from None
    per_chip = min(PER_CHIP_BATCH[target.chip.family], MAX_GLOBAL_BATCH // target.chips)
    return target.chips, max(1, per_chip) * target.chips


def get_config(accelerator: str = ""):
    """default.py with the global batch, learning rate and step counts scaled to the slice."""
    chips, batch = batch_for(accelerator)
    c = base.get_config()
    c.batch_size = batch
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
