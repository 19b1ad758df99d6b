"""pix2pix-256 for a Cloud TPU slice: the per-chip batch follows the chip, the global batch
the slice.

The slice's accelerator type (or its chip count) comes after the file name as `tpu=` (config
files are read before JAX starts; the value alone, configs/pod.py:v4-32, also works):
    python -m jaxcolor.train --config configs/pod.py:tpu=v4-32 --workdir gs://BUCKET/RUN
launch/train.sh passes its --type and starts every host at once. configs/unet_scribbles.py,
resunet_palette.py and reference.py size themselves the same way with their own measurements
(configs/FILE.py:tpu=TYPE; for reference.py also :tpu=TYPE,vgg=PATH).

Scaling with the slice (data parallelism: every chip holds the whole model), by
jaxcolor/core/slice_sizing.py (docs/tpu.md, "Sizing for a TPU slice", has the measurements):
- batch_size: the largest power of two at most 3/4 of the largest per-chip batch the TPU
  compiler fits (`python -m jaxcolor.bench aot --search`; slice_sizing.PIX2PIX_MAX_PER_CHIP,
  measured on every chip), times the chips, at most MAX_GLOBAL_BATCH (4096). The margin is in
  images, not bytes: XLA rematerialises to fit, so the peak is near HBM well below the limit
  (13.8 of 15.75 GiB at 512 on a v5e, whose limit is 792 to 815). The cap is the training
  reason for less: default.py's 6.4M images are then still 1,563 updates, and no pix2pix-style
  GAN is known to train well at a larger batch. A chip count (configs/pod.py:tpu=16) keeps
  LEGACY_PER_CHIP_BATCH, as the chip is then unknown.
- optimizer.learning_rate: pix2pix's 2e-4 is tuned for small batches; scale it with the square
  root of (batch_size / 64) (Adam; the linear rule is usually too aggressive for GANs), capped
  at 1e-3. Watch d_real / d_fake: D winning outright means the lr is too high.
- BatchNorm: the batch is sharded over the chips but the statistics are the global batch's
  (GSPMD reduces over the mesh), so at these batches they are accurate estimates and the
  running averages used for evaluation match them; pix2pix's batch 1 made BatchNorm an
  instance norm. model.*.norm="instance" keeps that per-image behaviour at any batch.
- num_steps, eval_every, checkpoint_every: in steps, each of which now sees batch_size images;
  the values below keep the number of images per run, evaluation and checkpoint as in
  configs/default.py (batch 64), so a larger slice saves and evaluates as often in wall time
  only if it is proportionally faster. On spot capacity, lower checkpoint_every: a preemption
  loses at most checkpoint_every steps (a SIGTERM itself always saves).
- eval_batch_size: the smallest multiple of the chip count >= default.py's 16.
"""

# Flax's examples import `configs.default`; configs/ cannot be imported from a non-editable
# install or another directory, so the base is in the package (see jaxcolor/config.py).
from jaxcolor import config as base
from jaxcolor.core import slice_sizing
from jaxcolor.core.config_arg import parse_arg

LEGACY_PER_CHIP_BATCH = 8


def batch_for(accelerator: str) -> tuple[int, int]:
    """Accelerator type ("v5p-64") or chip count ("16") -> (chips, global batch size)."""
    if str(accelerator).isdigit() and int(accelerator) >= 1:
        return int(accelerator), LEGACY_PER_CHIP_BATCH * int(accelerator)
    if not accelerator:
        raise ValueError(
            "configs/pod.py needs the slice's accelerator type (or its chip count): "
            "--config=configs/pod.py:tpu=v4-32 or configs/pod.py:tpu=v5litepod-8 "
            "(configs/pod.py:tpu=16 for a v4-32 by chips: v4/v5p names count 2 cores per chip)."
        )
    return slice_sizing.slice_batch(
        accelerator, slice_sizing.PIX2PIX_MAX_PER_CHIP, option="configs/pod.py:tpu"
    )


def get_config(arg: str = ""):
    """default.py with the global batch, learning rate and step counts scaled to the slice
    (`configs/pod.py:tpu=TYPE`)."""
    chips, batch = batch_for(parse_arg(arg, "configs/pod.py", tpu="").tpu)
    c = base.get_config()
    c.compute_dtype = "bfloat16"
    return slice_sizing.rescale(c, batch, chips)
