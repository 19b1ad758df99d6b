"""A config sized for a Cloud TPU slice: the per-chip batch by chip type, the global batch by
the slice, and what follows from them (learning rate, step counts, eval batch). Pure Python:
config files call it before JAX starts (`configs/pod.py:tpu=TYPE`,
`configs/unet_scribbles.py:tpu=TYPE`).

The rule (docs/tpu.md, "Sizing for a TPU slice"): the per-chip batch is the largest power of two at
most HEADROOM (3/4) of the largest per-chip batch the TPU compiler fits (`python -m
jaxcolor.bench aot --search`), and the global batch is at most MAX_GLOBAL_BATCH. The margin is
counted in images, not bytes: XLA rematerialises to fit, so the peak is near HBM well below the
limit; a quarter of the batch spare leaves room for a larger eval batch or another compiler.

Each config states the largest per-chip batch measured for its network on the chips it was
measured on. For another chip, `max_per_chip` scales the measurement by pix2pix-256's ratio
between the two chips (PIX2PIX_MAX_PER_CHIP, all measured): an estimate, which
`bench aot --config FILE:tpu=TYPE --topology TYPE` checks for a slice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import ml_collections

from jaxcolor.core import accelerators

HEADROOM = 0.75
MAX_GLOBAL_BATCH = 4096
MAX_LR = 1e-3
# Largest per-chip batch of configs/pod.py's train step (pix2pix-256, bf16) that the TPU
# compiler (libtpu 0.0.42.1) fits, benchmarks/results/aot-*.json: v5e aot-pod-v5litepod-8
# (792 fits, 816 does not), v4 aot-search-v4-32 (1624 / 1680), v6e aot-search-v6e-8 (1624 fits),
# v5p aot-search-v5p-64 (5336 fits).
PIX2PIX_MAX_PER_CHIP = {"v5litepod": 792, "v4": 1624, "v6e": 1624, "v5p": 5336}
# Grain workers per host on a TPU VM (100+ vCPUs per host).
TPU_HOST_WORKERS = 16


def max_per_chip(measured: Mapping[str, int], chip: str) -> int:
    """The largest per-chip batch on `chip` (a family: "v5litepod", "v4", "v6e", "v5p"): the
    measurement where there is one, else the first measured chip's scaled by pix2pix's ratio."""
    if chip in measured:
        return int(measured[chip])
    ref = next(iter(measured))
    return int(measured[ref] * PIX2PIX_MAX_PER_CHIP[chip] / PIX2PIX_MAX_PER_CHIP[ref])


def per_chip_batch(measured: Mapping[str, int], chip: str) -> int:
    """The largest power of two at most HEADROOM x `max_per_chip(measured, chip)` (>= 1)."""
    limit = max(1, int(HEADROOM * max_per_chip(measured, chip)))
    return 2 ** int(math.log2(limit))


def slice_batch(accelerator: str, measured: Mapping[str, int], *, option: str) -> tuple[int, int]:
    """Accelerator type ("v5p-64") -> (chips, global batch): `per_chip_batch` on each chip, at
    most MAX_GLOBAL_BATCH in all. An unknown type raises ValueError naming `option` (config
    files report a ValueError as one line) and listing the known types."""
    try:
        target = accelerators.slice_of(accelerator, option=option)
    except ValueError as e:
        raise ValueError(str(e)) from None
    per_chip = min(per_chip_batch(measured, target.chip.family), MAX_GLOBAL_BATCH // target.chips)
    return target.chips, max(1, per_chip) * target.chips


def rescale(c: ml_collections.ConfigDict, batch_size: int, chips: int) -> ml_collections.ConfigDict:
    """`c` (a config at its own batch_size) changed to the global `batch_size` on `chips`:

    - optimizer.learning_rate times sqrt(batch_size / c.batch_size) (Adam; the linear rule is
      usually too aggressive for GANs), at most MAX_LR (or c's own, where that is higher);
    - num_steps, eval_every, checkpoint_every, log_every divided by the batch ratio, so that a
      run, an evaluation interval and a checkpoint interval see as many images as in `c`;
    - eval_batch_size: the smallest multiple of `chips` >= c's (it must split over the mesh);
    - data.num_workers: TPU_HOST_WORKERS Grain workers per host.
    """
    base = c.batch_size
    ratio = batch_size / base

    def per_images(steps: int) -> int:
        return max(1, round(steps / ratio))

    lr = c.optimizer.learning_rate
    c.batch_size = batch_size
    c.optimizer.learning_rate = min(max(MAX_LR, lr), lr * math.sqrt(ratio))
    c.num_steps = per_images(c.num_steps)
    c.eval_every = per_images(c.eval_every)
    c.checkpoint_every = per_images(c.checkpoint_every)
    c.log_every = max(min(10, c.log_every), per_images(c.log_every))
    c.eval_batch_size = -(-c.eval_batch_size // chips) * chips
    c.data.num_workers = TPU_HOST_WORKERS
    return c


def for_slice(
    c: ml_collections.ConfigDict, accelerator: str, measured: Mapping[str, int], *, option: str
) -> ml_collections.ConfigDict:
    """`c` sized for the slice `accelerator` by the rule above, from its network's `measured`
    largest per-chip batches ({chip family: batch})."""
    chips, batch = slice_batch(accelerator, measured, option=option)
    return rescale(c, batch, chips)
