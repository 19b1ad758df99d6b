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

from jaxcolor import parallel
from jaxcolor.core.image_size import hw, image_hw, to_json
from jaxcolor.data import pipeline
from jaxcolor.data.hints import condition_channels
from jaxcolor.data.sketch import is_model_sketch
from jaxcolor.nets import registry
from jaxcolor.nets.build import upsample_impl
from jaxcolor.training import builder, vgg

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


def generator_forward_flops(g: ml_collections.ConfigDict, in_channels: int, size) -> int:
    """2 x MACs of one generator forward on one image; `size` is an int or (height, width)."""
    return registry.generator(g).forward_flops(g, in_channels, hw(size))


def discriminator_forward_flops(d: ml_collections.ConfigDict, in_channels: int, size) -> int:
    """2 x MACs of one discriminator forward on one image (the multi-scale one sums its
    scales)."""
    return registry.discriminator(d).forward_flops(d, in_channels, hw(size))


def analytic_step_flops(config: ml_collections.ConfigDict) -> dict[str, int]:
    """Per-image FLOPs of one GAN step by the convention in the module docstring."""
    cin = condition_channels(config)
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
    # Perceptual/style losses: VGG-19 forward on the target, forward + input gradient on the
    # fake (its weights are frozen), i.e. three forwards.
    perceptual = 0
    if vgg.uses_vgg(config):
        layers = vgg.parse_layers(config.loss.vgg_layers)
        perceptual = vgg.forward_flops(layers, size)
    return {
        "g_forward": g,
        "d_forward": d,
        "sketcher_forward": sketcher,
        "vgg_forward": perceptual,
        "step": FWD_BWD * (g + (D_PASSES * d if d else 0)) + sketcher + 3 * perceptual,
    }


def xla_flops(compiled: Any) -> float | None:
    """FLOPs of one call of a compiled function per device (None if the backend has no count)."""
    try:
        costs = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it; report "n/a"
        return None
    flops = (costs or {}).get("flops")  # a dict (jax>=0.10.2, pyproject's pin), or None
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


class _Setup:
    """The run of `config` (`builder.build`), its state, and its step compiled for a synthetic
    batch, with compile time and FLOPs."""

    def __init__(self, config: ml_collections.ConfigDict):
        run = builder.build(config)  # as train_and_evaluate: validated before anything is built
        self.config = run.config  # data.derive decided for the mesh
        self.mesh, self.frozen = run.mesh, run.frozen
        self.sharding = parallel.batch_sharding(self.mesh)
        self.state = run.init_state()
        batch = run.synthetic_batch()
        start = time.perf_counter()
        self.step = run.train_step().lower(self.state, self.frozen, batch).compile()
        self.compile_s = time.perf_counter() - start
        self.batch = batch
        self.devices = list(self.mesh.devices.flat)

    def run(self, steps: int) -> float:
        """Seconds for `steps` steps; one sync at the end (donated state, metrics on device)."""
        start = time.perf_counter()
        metrics = None
        for _ in range(steps):
            self.state, metrics = self.step(self.state, self.frozen, self.batch)
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
        "upsample_impl": upsample_impl(config.model.generator, parallel.platform(setup.mesh)),
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
    config = setup.config
    train_source, _ = pipeline.make_sources(config)
    data_iter = iter(pipeline.train_dataset(config, train_source))

    def next_batch():
        batch = next(data_iter)
        pipeline.pop_skipped(batch)
        return parallel.to_global(batch, setup.sharding)

    for _ in range(warmup):  # workers start, first batches arrive
        setup.state, metrics = setup.step(setup.state, setup.frozen, next_batch())
    jax.block_until_ready(setup.state)
    wait = 0.0
    previous = None
    start = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        batch = next_batch()
        wait += time.perf_counter() - t
        setup.state, metrics = setup.step(setup.state, setup.frozen, batch)
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
