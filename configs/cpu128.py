"""The CPU recipe for real illustrations: a useful colorizer from a folder of images in under an
hour on 2 CPU cores, at 128 px, for each hint method.

The hint method comes after the file name as `hints=` (blur when omitted; the value alone,
configs/cpu128.py:points, also works, as `bench quality` passes it):
    python -m jaxcolor.train --config configs/cpu128.py:hints=points \\
        --config.data.source=folder:/path/to/illustrations --workdir runs/points
`python -m jaxcolor.bench quality` trains it for every hint method and writes the quality table
(README, "Results"). Every setting below was chosen by measurement on real anime faces
(benchmarks/README.md, "Quality recipe"); settings that did not help stay at the base's.
"""

from jaxcolor import config as base
from jaxcolor.core.config_arg import parse_arg
from jaxcolor.data.hints import HINT_CHANNELS, pixel_methods


def get_config(arg: str = ""):
    """configs/cpu128.py[:hints=METHOD]: the recipe with data.hints = METHOD."""
    hints = parse_arg(arg, "configs/cpu128.py", hints="blur").hints
    if hints not in HINT_CHANNELS:
        raise ValueError(
            f"configs/cpu128.py:hints={hints}: the argument is the hint method, one of "
            f"{', '.join(HINT_CHANNELS)} (e.g. configs/cpu128.py:hints=points)."
        )
    c = base.get_config()
    c.image_size = 128
    c.batch_size = 16
    c.num_steps = 5_000  # about 40 min on 2 cores (bench quality --minutes 45 trained 5,488)
    c.compute_dtype = "float32"  # bfloat16 is slower on CPUs
    c.data.hints = hints
    c.data.val_fraction = 0.1  # a held-out split large enough to compare runs (300 of 3,000)
    c.data.num_workers = 0  # 2 cores: Grain's read threads, no worker processes
    c.model.generator.num_downs = 7  # 128 px -> 1x1 bottleneck
    c.model.generator.ngf = 16
    c.model.discriminator.ndf = 16
    c.loss.gan_mode = "none"  # the PatchGAN cost 1.4 dB and 0.07 SSIM at this budget
    c.loss.ssim_weight = 30.0  # 1 - SSIM beside L1: +0.14 dB, +0.022 SSIM
    c.train.ema_decay = 0.999  # evaluate and export the moving average: +0.2 dB
    if hints in pixel_methods():
        c.loss.hint_weight = 10.0
    c.optimizer.learning_rate = 1e-3
    c.log_every = 100
    c.eval_every = 500
    c.eval_batch_size = 16
    c.eval_split_every = c.num_steps  # once, at the end
    c.eval_max_images = 0
    c.checkpoint_every = 500
    return c
