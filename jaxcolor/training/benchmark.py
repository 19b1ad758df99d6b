"""Throughput of the jitted GAN step: step time, images/s, model FLOPs, MFU, peak memory.

`python -m jaxcolor.bench` is the command line; these functions return plain dicts (JSON-ready)
so the figures can be compared across runs and against `jaxcolor/torch_bench.py` (PyTorch).

FLOPs are counted two ways and both are reported:
- `xla`: the compiled step's own count (`Compiled.cost_analysis()["flops"]`, per device, times
  the device count, over the global batch). It includes every op XLA emits (elementwise,
  normalisation, optimizer), and counts what the chosen formulation computes (e.g. the zero
  taps of a transposed convolution on the dilated input where XLA keeps them).
- `analytic`: 2 x MACs of every conv, transposed conv and linear forward (a k4-s2 transposed conv
  counted on its real taps, i.e. as the convolution it is the gradient of), x 3 for forward
  plus backward (input and weight gradients), summed over the passes in one step: the
  generator once, the discriminator three times (real and fake in D's update, fake in G's).
  MFU uses the analytic count (the work the model needs, whatever the formulation).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxcolor import parallel
from jaxcolor.core.image_size import hw, image_hw, to_json
from jaxcolor.data import pipeline
from jaxcolor.data.sketch import is_model_sketch
from jaxcolor.models import takes_reference
from jaxcolor.models.layers import resolve_upsample_impl
from jaxcolor.models.reference import code_index, fused_levels, style_widths
from jaxcolor.models.unet import level_widths
from jaxcolor.training import config_checks, sketcher
from jaxcolor.training.step import create_train_state, jit_train_step

# Peak dense bf16 FLOP/s per device, by a lower-case substring of `device.device_kind`; the
# first match wins, so the more specific names come first.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("tpu v5 lite", 197e12),  # v5e
    ("tpu v5e", 197e12),
    ("tpu v5p", 459e12),
    ("tpu v5", 459e12),  # v5p reports "TPU v5"
    ("tpu v6 lite", 918e12),  # v6e (Trillium)
    ("tpu v6e", 918e12),
    ("tpu v4", 275e12),
    ("h100", 989e12),  # SXM figure (dense); an H100 PCIe peaks lower (756T)
    ("h200", 989e12),
)
# The discriminator passes in one step (D update: real, fake; G update: fake) and the factor
# for forward + backward (see the module docstring).
D_PASSES = 3
FWD_BWD = 3


def peak_flops(device: jax.Device) -> float | None:
    """Peak bf16 FLOP/s of `device` from PEAK_BF16_FLOPS, or None ("unknown")."""
    kind = device.device_kind.lower()
    return next((peak for name, peak in PEAK_BF16_FLOPS if name in kind), None)


def _conv_out(size: int, stride: int) -> int:
    return (size + 2 - 4) // stride + 1  # k4, p1


def classic_unet_forward_flops(g, in_channels: int, size) -> int:
    """2 x MACs of one classic U-Net forward (3x3 double convs, 2x2 s2 up-convs, 1x1 head)."""
    h, w = hw(size)
    widths = [g["ngf"] * 2**i for i in range(g["num_downs"] + 1)]
    total = 0
    for i, width in enumerate(widths):  # encoders, then the bottleneck (i == num_downs)
        pixels = (h // 2**i) * (w // 2**i)
        cin = in_channels if i == 0 else widths[i - 1]
        total += pixels * 9 * (cin + width) * width
        if i < g["num_downs"]:
            # the up-conv into level i (4 taps per input pixel) and the decoder double conv
            total += pixels * widths[i + 1] * width + pixels * 9 * (2 * width + width) * width
    return 2 * (total + h * w * widths[0] * g["out_channels"])


def resunet_forward_flops(g, in_channels: int, size) -> int:
    """2 x MACs of one residual attention U-Net forward (3x3 residual blocks with 1x1
    projections, attention gates; the deep-supervision heads, used only in training, left out)."""
    h, w = hw(size)
    widths = [g["ngf"] * min(2**i, g["max_mult"]) for i in range(g["num_downs"] + 1)]
    pixels = [(h // 2**i) * (w // 2**i) for i in range(g["num_downs"] + 1)]

    def block(cin: int, cout: int) -> int:  # per pixel
        return 9 * cin * cout + 9 * cout * cout + (cin * cout if cin != cout else 0)

    total = 0
    for i, width in enumerate(widths):
        total += pixels[i] * block(in_channels if i == 0 else widths[i - 1], width)
        if i < g["num_downs"]:
            inter = max(width // 2, 1)
            gate = 4 * width * inter + widths[i + 1] * inter + inter  # theta, phi, psi
            total += pixels[i + 1] * gate + pixels[i] * block(width + widths[i + 1], width)
    return 2 * (total + pixels[0] * widths[0] * g["out_channels"])


def _same_out(size: int, stride: int) -> int:
    return (size - 1) // stride + 1  # odd k, p = k // 2 (the style encoder's convs)


def style_encoder_forward_flops(g, size) -> int:
    """2 x MACs of the reference U-Net's style encoder on one (H, W, 3) reference: the 3x3 stem,
    4 ResNet blocks (3x3 s2, 3x3, 1x1 s2 shortcut); the pooling is not a conv."""
    h, w = hw(size)
    total = h * w * 9 * 3 * g.style_width
    cin = g.style_width
    for cout in style_widths(g.style_width, g.style_dim):
        h, w = _same_out(h, 2), _same_out(w, 2)
        total += h * w * (9 * cin * cout + 9 * cout * cout + cin * cout)
        cin = cout
    return 2 * total


def adain_forward_flops(g) -> int:
    """2 x MACs of the reference U-Net's AdaIN projections (code -> gamma, beta per level)."""
    codes = style_widths(g.style_width, g.style_dim)
    widths = level_widths(g.num_downs, g.ngf)
    return 2 * sum(
        codes[code_index(level, g.style_codes)] * 2 * widths[level - 1]
        for level in fused_levels(g.num_downs, g.style_codes)
    )


def reference_unet_forward_flops(g, in_channels: int, size) -> int:
    """2 x MACs of one reference U-Net forward: the pix2pix U-Net, the style encoder on a
    reference of the training image's size, and the AdaIN projections."""
    unet = pix2pix_unet_forward_flops(g, in_channels, size)
    return unet + style_encoder_forward_flops(g, size) + adain_forward_flops(g)


def generator_forward_flops(g: ml_collections.ConfigDict, in_channels: int, size) -> int:
    """2 x MACs of one generator forward on one image; `size` is an int or (height, width)."""
    name = g.get("name", "unet")
    if name == "classic_unet":
        return classic_unet_forward_flops(g, in_channels, size)
    if name == "resunet":
        return resunet_forward_flops(g, in_channels, size)
    if name == "reference_unet":
        return reference_unet_forward_flops(g, in_channels, size)
    return pix2pix_unet_forward_flops(g, in_channels, size)


def pix2pix_unet_forward_flops(g, in_channels: int, size) -> int:
    """2 x MACs of one pix2pix U-Net forward (convs k4 s2 p1, up-convs k4 s2)."""
    h, w = hw(size)
    widths = [g.ngf * min(2**i, 8) for i in range(g.num_downs)]
    total = 0
    for i, width in enumerate(widths):
        cin = in_channels if i == 0 else widths[i - 1]
        out = (h // 2 ** (i + 1)) * (w // 2 ** (i + 1))  # output pixels
        total += out * 16 * cin * width  # down conv
        up_in = width if i == g.num_downs - 1 else 2 * width
        up_out = g.out_channels if i == 0 else widths[i - 1]
        total += out * 16 * up_in * up_out  # up conv: each input pixel meets 16 taps
    return 2 * total


def discriminator_forward_flops(d: ml_collections.ConfigDict, in_channels: int, size) -> int:
    """2 x MACs of one discriminator forward on one image; the multi-scale one sums its
    PatchGANs over the inputs average-pooled (k3 s2 p1) to 1x, 1/2, 1/4, ..."""
    if d.get("name", "patchgan") != "multiscale_patchgan":
        return patchgan_forward_flops(d, in_channels, size)
    (h, w), total = hw(size), 0
    for _ in range(d.num_scales):
        total += patchgan_forward_flops(d, in_channels, (h, w))
        h, w = _same_out(h, 2), _same_out(w, 2)  # reference.downsample's output size
    return total


def patchgan_forward_flops(d, in_channels: int, size) -> int:
    """2 x MACs of one PatchGAN forward (k4 p1 convs, strides 2, ..., 2, 1, 1)."""
    widths = [d.ndf * min(2**i, 8) for i in range(d.n_layers + 1)] + [1]
    strides = [2] * d.n_layers + [1, 1]
    (h, w), cin, total = hw(size), in_channels, 0
    for width, stride in zip(widths, strides, strict=True):
        h, w = _conv_out(h, stride), _conv_out(w, stride)
        total += h * w * 16 * cin * width
        cin = width
    return 2 * total


def analytic_step_flops(config: ml_collections.ConfigDict) -> dict[str, int]:
    """Per-image FLOPs of one GAN step by the convention in the module docstring."""
    cin = pipeline.condition_channels(config)
    size = image_hw(config)
    g = generator_forward_flops(config.model.generator, cin, size)
    d = 0
    if config.loss.gan_mode != "none":
        out = config.model.generator.out_channels
        d = discriminator_forward_flops(config.model.discriminator, cin + out, size)
    # data.sketch = "model:DIR": the frozen extractor runs forward only, once per step.
    sketcher = 0
    if is_model_sketch(config.data.sketch):
        from jaxcolor.training import sketcher as sketcher_lib

        arch = sketcher_lib.read_export(config)["generator"]
        sketcher = generator_forward_flops(
            ml_collections.ConfigDict(arch), arch["in_channels"], size
        )
    return {
        "g_forward": g,
        "d_forward": d,
        "sketcher_forward": sketcher,
        "step": FWD_BWD * (g + (D_PASSES * d if d else 0)) + sketcher,
    }


def xla_flops(compiled: Any) -> float | None:
    """FLOPs of one call of a compiled function per device (None if the backend has no count)."""
    try:
        costs = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it; report "n/a"
        return None
    if isinstance(costs, list | tuple):  # older jax: one dict per computation
        costs = costs[0] if costs else None
    flops = (costs or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def peak_memory_bytes(devices: list[jax.Device]) -> int | None:
    """Largest `peak_bytes_in_use` over `devices` (None where memory_stats is unavailable)."""
    peaks = []
    for device in devices:
        try:
            stats = device.memory_stats()
        except Exception:  # noqa: BLE001 - e.g. XLA:CPU raises or returns None
            stats = None
        if stats and "peak_bytes_in_use" in stats:
            peaks.append(stats["peak_bytes_in_use"])
    return max(peaks) if peaks else None


def synthetic_batch(config: ml_collections.ConfigDict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random uint8 arrays shaped like one process's pipeline batch (colour, sketch, hints)."""
    rng = np.random.default_rng(seed)
    n = parallel.per_process_batch_size(config.batch_size)
    shape = (n, *image_hw(config))
    hint_channels = pipeline.hints_lib.HINT_CHANNELS[config.data.hints]
    batch = {
        "color": rng.integers(0, 256, (*shape, 3), dtype=np.uint8),
        "sketch": rng.integers(0, 256, (*shape, 1), dtype=np.uint8),
    }
    if hint_channels:  # data.hints = "none": no hints array, as the pipeline
        batch["hints"] = rng.integers(0, 256, (*shape, hint_channels), dtype=np.uint8)
    if takes_reference(config.model.generator):
        batch["reference"] = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    if is_model_sketch(config.data.sketch):  # made on device from the colours
        del batch["sketch"]
    return batch


class _Setup:
    """Mesh, train state and the compiled step of `config`, with compile time and FLOPs."""

    def __init__(self, config: ml_collections.ConfigDict):
        config_checks.validate(config)  # as train_and_evaluate: before anything is built
        self.mesh = parallel.create_mesh(config.mesh.data)
        parallel.check_batch_size(config.batch_size, self.mesh)
        self.sharding = parallel.batch_sharding(self.mesh)
        self.state, nets = create_train_state(
            config,
            in_channels=pipeline.condition_channels(config),
            mesh=self.mesh,
            sketch_model=sketcher.load_sketcher(config, parallel.replicated(self.mesh)),
        )
        batch = parallel.to_global(synthetic_batch(config), self.sharding)
        start = time.perf_counter()
        self.step = jit_train_step(nets, config, self.mesh).lower(self.state, batch).compile()
        self.compile_s = time.perf_counter() - start
        self.batch = batch
        self.devices = list(self.mesh.devices.flat)

    def run(self, steps: int) -> float:
        """Seconds for `steps` steps; one sync at the end (donated state, metrics on device)."""
        start = time.perf_counter()
        metrics = None
        for _ in range(steps):
            self.state, metrics = self.step(self.state, self.batch)
        jax.block_until_ready((self.state, metrics))
        return time.perf_counter() - start


def _report(config, setup: _Setup, step_s: float) -> dict[str, Any]:
    n_dev = len(setup.devices)
    batch = config.batch_size
    analytic = analytic_step_flops(config)
    per_device = xla_flops(setup.step)
    xla_per_image = per_device * n_dev / batch if per_device else None
    model_flops_per_s = analytic["step"] * batch / step_s
    peak = peak_flops(setup.devices[0])
    memory = peak_memory_bytes(setup.devices)
    return {
        "backend": jax.default_backend(),
        "device_kind": setup.devices[0].device_kind,
        "devices": n_dev,
        "batch_size": batch,
        "image_size": to_json(config.image_size),
        "compute_dtype": config.compute_dtype,
        "upsample_impl": resolve_upsample_impl(config.model.generator.get("upsample_impl", "auto")),
        "compile_s": round(setup.compile_s, 3),
        "step_s": step_s,
        "images_per_s": batch / step_s,
        "images_per_s_per_device": batch / step_s / n_dev,
        "flops_per_image_analytic": analytic["step"],
        "flops_per_image_xla": xla_per_image,
        "xla_over_analytic": xla_per_image / analytic["step"] if xla_per_image else None,
        "model_tflops_per_s": model_flops_per_s / 1e12,
        "peak_bf16_tflops_per_device": peak / 1e12 if peak else "unknown",
        "mfu": model_flops_per_s / (peak * n_dev) if peak else "unknown",
        "peak_memory_bytes": memory if memory is not None else "n/a",
    }


def bench_train(config: ml_collections.ConfigDict, *, steps: int, warmup: int = 1) -> dict:
    """The real jitted GAN step on one synthetic device-resident batch, `steps` timed steps."""
    setup = _Setup(config)
    setup.run(warmup)
    step_s = setup.run(steps) / steps
    return {"mode": "train", "steps": steps, "warmup": warmup} | _report(config, setup, step_s)


def bench_e2e(config: ml_collections.ConfigDict, *, steps: int, warmup: int = 1) -> dict:
    """The step fed by the real Grain pipeline, against the device-resident step time.

    Each iteration fetches the next host batch while the previous step still runs (its
    metrics are waited on one step late, as the training loop does); `data_wait_s` is the
    time the loop spent waiting for the pipeline. The step is input-bound when that is more
    than 10% of the step time. `slowdown_vs_synthetic` also shows the pipeline's indirect cost
    (on a CPU backend its workers and threads take cores from the step).
    """
    setup = _Setup(config)
    setup.run(warmup)
    device_step_s = setup.run(steps) / steps
    train_source, _ = pipeline.make_sources(config)
    data_iter = iter(pipeline.train_dataset(config, train_source))

    def next_batch():
        batch = next(data_iter)
        pipeline.pop_skipped(batch)
        return parallel.to_global(batch, setup.sharding)

    for _ in range(warmup):  # workers start, first batches arrive
        setup.state, metrics = setup.step(setup.state, next_batch())
    jax.block_until_ready(setup.state)
    wait = 0.0
    previous = None
    start = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        batch = next_batch()
        wait += time.perf_counter() - t
        setup.state, metrics = setup.step(setup.state, batch)
        if previous is not None:
            jax.block_until_ready(previous)
        previous = metrics
    jax.block_until_ready((setup.state, previous))
    e2e_step_s = (time.perf_counter() - start) / steps
    close = getattr(data_iter, "close", None)
    if close is not None:
        close()
    report = _report(config, setup, e2e_step_s)
    return (
        {"mode": "e2e", "steps": steps, "warmup": warmup}
        | report
        | {
            "device_step_s": device_step_s,
            "data_wait_s": wait / steps,
            "data_wait_fraction": wait / steps / e2e_step_s,
            "slowdown_vs_synthetic": e2e_step_s / device_step_s,
            "input_bound": wait / steps > 0.1 * e2e_step_s,
            "data_workers": config.data.num_workers,
        }
    )
