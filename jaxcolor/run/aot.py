"""Ahead-of-time compilation of the real train and eval steps for a Cloud TPU slice, on any host.

libtpu builds compile-only devices for every host of the slice (`parallel.topology_devices`);
the state and batches are shapes (`jax.eval_shape`, `ShapeDtypeStruct`), so nothing is
allocated, and `jit(...).lower(...).compile()` returns the TPU compiler's own executable. Its
`memory_analysis()` is the per-chip HBM the step needs; `cost_analysis()` its FLOPs and bytes.
A batch that does not fit is rejected by the compiler (RESOURCE_EXHAUSTED), quickly.

`python -m jaxcolor.bench aot` is the command line (docs/tpu.md, "Sizing for a TPU slice").
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import jax
import ml_collections
from jax.sharding import Mesh

from jaxcolor import parallel
from jaxcolor.core import accelerators
from jaxcolor.core.errors import ConfigError
from jaxcolor.core.image_size import to_json
from jaxcolor.data import derive, schema
from jaxcolor.evaluation.fixed_batch import jit_eval_step
from jaxcolor.nets.build import upsample_impl
from jaxcolor.run import benchmark
from jaxcolor.training import builder

GIB = 2**30
# vCPUs of one TPU VM host by (chip, chips per host). Checked against Cloud TPU's docs: v5e
# ct5lp-hightpu-4t / -8t 112 / 224 (tpu/docs/v5e, "VM types"), v5p 208 (tpu/docs/v5p-training:
# half of them when bound to the chips' NUMA node). v6e (ct6e-standard-4t / -8t) and v4 are the
# commonly quoted figures; the docs at hand did not list them.
HOST_VCPUS = {
    ("v5litepod", 4): 112,
    ("v5litepod", 8): 224,
    ("v6e", 4): 180,
    ("v6e", 8): 180,
    ("v4", 4): 240,
    ("v5p", 4): 208,
}
# The two forms of the compiler's rejection: "Used 20.5G of 15.75G hbm" (buffer assignment) and
# "required for HLO temporaries (979.27G) exceeds available HBM (15.75G)" (before it).
_OOM = (
    re.compile(r"Used ([\d.]+)([KMGT]?) of ([\d.]+)([KMGT]?) hbm", re.IGNORECASE),
    re.compile(r"\(([\d.]+)([KMGT]?)\) exceeds available HBM \(([\d.]+)([KMGT]?)\)"),
)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class _DoesNotFit(ConfigError):
    """The TPU compiler rejected the step: it needs more HBM than a chip has."""

    def __init__(self, message: str, used_bytes: float | None, limit_bytes: float | None):
        super().__init__(message)
        self.used_bytes, self.limit_bytes = used_bytes, limit_bytes


@dataclasses.dataclass(frozen=True)
class Step:
    """One compiled step's per-chip figures (bytes, FLOPs) and its compile time."""

    compile_s: float
    argument_bytes: int
    output_bytes: int
    alias_bytes: int
    temp_bytes: int
    code_bytes: int
    peak_bytes: int
    flops: float | None
    bytes_accessed: float | None


def target_mesh(accelerator_type: str, num_slices: int = 1) -> tuple[accelerators.Slice, Mesh]:
    """The slice and the 1-D `data` mesh over the compile-only devices of all its hosts."""
    target = accelerators.slice_of(accelerator_type)
    devices = parallel.topology_devices(accelerator_type, num_slices)
    return target, parallel.create_mesh(-1, devices=devices)


def _step_figures(compiled: Any, compile_s: float) -> Step:
    memory = compiled.memory_analysis()
    costs = compiled.cost_analysis() or {}  # a dict (jax>=0.10.2, pyproject's pin), or None
    args, out = memory.argument_size_in_bytes, memory.output_size_in_bytes
    alias, temp = memory.alias_size_in_bytes, memory.temp_size_in_bytes
    code = memory.generated_code_size_in_bytes
    peak = getattr(memory, "peak_memory_in_bytes", 0) or (args + out - alias + temp + code)
    return Step(
        compile_s=compile_s,
        argument_bytes=args,
        output_bytes=out,
        alias_bytes=alias,
        temp_bytes=temp,
        code_bytes=code,
        peak_bytes=peak,
        flops=float(costs["flops"]) if costs.get("flops") else None,
        bytes_accessed=float(costs["bytes accessed"]) if costs.get("bytes accessed") else None,
    )


def _compile(name: str, lowered_fn, batch_size: int) -> Step:
    start = time.perf_counter()
    try:
        compiled = lowered_fn().compile()
    except jax.errors.JaxRuntimeError as e:
        text = str(e)
        if "RESOURCE_EXHAUSTED" not in text:
            raise
        m = next((m for pattern in _OOM if (m := pattern.search(text))), None)
        used = float(m.group(1)) * _UNITS[m.group(2).upper()] if m else None
        limit = float(m.group(3)) * _UNITS[m.group(4).upper()] if m else None
        figure = (
            f"needs {used / GIB:.2f} GiB of HBM per chip, the chip has {limit / GIB:.2f} GiB"
            if m
            else text.splitlines()[0][:300]
        )
        option = (
            "--batch_size or --config.batch_size" if name == "train" else "--config.eval_batch_size"
        )
        raise _DoesNotFit(
            f"does not fit: the {name} step at batch_size={batch_size} {figure} (the TPU "
            f"compiler's figure); lower {option}, or use a chip with more HBM.",
            used,
            limit,
        ) from None
    return _step_figures(compiled, time.perf_counter() - start)


def compile_steps(
    config: ml_collections.ConfigDict, mesh: Mesh, *, with_eval: bool = True
) -> dict[str, Step]:
    """AOT-compiles the train step (and the fixed-batch eval step) of `config` for `mesh`'s
    devices, from abstract state and batch shapes. Raises DoesNotFit if a step is too big.

    The frozen networks (the VGG-19 of the perceptual/style losses, a data.sketch="model:DIR"
    extractor) are compiled from their shapes too: no weights file is read (a sketch model's
    config.json is)."""
    run = builder.build(config, mesh, frozen=builder.ABSTRACT)
    config = run.config  # data.derive decided for the slice's devices
    step, state, frozen = run.train_step(), run.state, run.frozen
    train = run.batch_shapes()
    steps = {
        "train": _compile("train", lambda: step.lower(state, frozen, train), config.batch_size)
    }
    if schema.on_device(config):  # what the step spends deriving sketches and hints
        derived = _jit_derive(config, mesh)
        key = jax.eval_shape(lambda: jax.random.key(0))
        steps["derivation"] = _compile(
            "derivation", lambda: derived.lower(train, key), config.batch_size
        )
    if with_eval:
        parallel.check_batch_size(config.eval_batch_size, mesh, name="eval_batch_size")
        evaluate = jit_eval_step(run.nets, mesh, config)
        batch = run.batch_shapes(config.eval_batch_size)
        steps["eval"] = _compile(
            "eval", lambda: evaluate.lower(state, frozen, batch), config.eval_batch_size
        )
    return steps


def _jit_derive(config: ml_collections.ConfigDict, mesh: Mesh):
    """`derive.complete` alone, jitted as the train step shards its batch: the device path's
    own cost, which the train step includes (fused there, so this is an upper bound)."""
    data = parallel.batch_sharding(mesh)
    return jax.jit(
        lambda batch, key: derive.complete(batch, key, config),
        in_shardings=(data, parallel.replicated(mesh)),
        out_shardings=data,
    )


def with_batch(config: ml_collections.ConfigDict, global_batch: int) -> ml_collections.ConfigDict:
    """A copy of `config` with batch_size = `global_batch`."""
    c = ml_collections.ConfigDict(config.to_dict())
    c.batch_size = global_batch
    return c


def search_max_batch(
    config: ml_collections.ConfigDict,
    mesh: Mesh,
    first: Step,
    *,
    hbm_bytes: float,
    step: int = 0,
    echo=lambda line: None,
) -> dict[str, Any]:
    """The largest per-chip batch (within `step`; 0 = 5 % of the first guess, a multiple of 8)
    whose train step the compiler accepts.

    Peak memory grows at most about linearly with the batch. The first guess extrapolates
    `first` (the config's own batch) to the chip's HBM, 5 % over so that it is likely rejected,
    which is fast; while guesses fit (XLA rematerialises to fit) the next is 25 % larger. A
    rejection states the bytes it needed and the chip's limit, so later guesses interpolate
    between the largest batch that fit and the smallest rejected one. Each batch that fits is a
    full compile.
    """
    chips = mesh.devices.size
    lo, lo_peak, hi, hi_used, limit = config.batch_size // chips, first.peak_bytes, None, None, None
    args = first.argument_bytes
    tried = []
    while hi is None or hi - lo > step:
        if hi is None:
            guess = 1.05 * (hbm_bytes - args) / max(1.0, (lo_peak - args) / lo)
            if tried:  # the extrapolation fit (XLA rematerialises): overshoot by 25 % instead
                guess = max(guess, 1.25 * lo)
            step = step or max(8, int(0.05 * guess) // 8 * 8)
            candidate = max(lo + step, -(-int(guess) // step) * step)
        else:
            target = limit or hbm_bytes
            guess = (lo + hi) / 2  # biased up: a rejection is fast, a fit is a full compile
            if hi_used and hi_used > lo_peak:
                guess = max(guess, lo + (target - lo_peak) * (hi - lo) / (hi_used - lo_peak))
            candidate = min(hi - step, max(lo + step, int(guess) // step * step))
            if candidate <= lo:
                break
        start = time.perf_counter()
        try:
            result = compile_steps(with_batch(config, candidate * chips), mesh, with_eval=False)
            lo, lo_peak, fit = candidate, result["train"].peak_bytes, True
        except _DoesNotFit as e:
            hi, hi_used, fit = candidate, e.used_bytes, False
            limit = e.limit_bytes or limit
        seconds = time.perf_counter() - start
        tried.append({"per_chip_batch": candidate, "fits": fit, "seconds": round(seconds, 1)})
        echo(f"  per-chip batch {candidate}: {'fits' if fit else 'does not fit'} ({seconds:.0f} s)")
    return {
        "max_per_chip_batch": lo,
        "max_batch_peak_gib": lo_peak / GIB,
        "compiler_hbm_limit_gib": limit / GIB if limit else None,
        "search_step": step,
        "search_tried": tried,
    }


def report(
    config: ml_collections.ConfigDict,
    target: accelerators.Slice,
    mesh: Mesh,
    steps: dict[str, Step],
    *,
    images_per_core_s: dict[str, float],
) -> dict[str, Any]:
    """Per-chip memory against HBM, FLOPs per image (XLA and analytic), bytes, arithmetic
    intensity, the roofline bound on step time and the MFU ceiling, on the device path what
    deriving sketches and hints adds to the step, and the host input rate (the CPU cores it
    needs at `images_per_core_s[path]`, the input pipeline's measured rate on the run's
    data.derive path, "host" or "device")."""
    path = derive.resolve(config, parallel.platform(mesh)).data.derive
    chip = target.chip
    chips = mesh.devices.size
    hosts = parallel.process_count(mesh)
    train = steps["train"]
    batch = config.batch_size
    analytic = benchmark.analytic_step_flops(config)["step"]
    hbm = chip.hbm_gib * GIB
    out: dict[str, Any] = {
        "mode": "aot",
        "topology": target.name,
        "topology_name": target.topology_name,
        "num_slices": chips // target.chips,
        "device_kind": mesh.devices.flat[0].device_kind,
        "hosts": hosts,
        "chips": chips,
        "chips_per_host": chips // hosts,
        "batch_size": batch,
        "per_chip_batch": batch // chips,
        "per_host_batch": batch // hosts,
        "image_size": to_json(config.image_size),
        "compute_dtype": config.compute_dtype,
        "upsample_impl": upsample_impl(config.model.generator, parallel.platform(mesh)),
        "hbm_gib": chip.hbm_gib,
        "flops_per_image_analytic": analytic,
        "derive": path,
    }
    for name, s in steps.items():
        out[name] = {
            "compile_s": round(s.compile_s, 1),
            "argument_gib": s.argument_bytes / GIB,
            "output_gib": s.output_bytes / GIB,
            "temp_gib": s.temp_bytes / GIB,
            "peak_gib": s.peak_bytes / GIB,
            "peak_fraction_of_hbm": s.peak_bytes / hbm,
            "fits": s.peak_bytes <= hbm,
        }
    out["fits"] = all(v["fits"] for k, v in out.items() if k in steps)
    if train.flops:
        out["flops_per_image_xla"] = train.flops * chips / batch
        out["xla_over_analytic"] = out["flops_per_image_xla"] / analytic
    if train.flops and train.bytes_accessed:
        compute_s = train.flops / chip.peak_bf16_flops
        memory_s = train.bytes_accessed / chip.hbm_bytes_per_s
        bound = max(compute_s, memory_s)
        out |= {
            "bytes_accessed_per_chip": train.bytes_accessed,
            "arithmetic_intensity": train.flops / train.bytes_accessed,
            "ridge_intensity": chip.peak_bf16_flops / chip.hbm_bytes_per_s,
            "roofline_step_s": bound,
            "roofline_bound_by": "compute" if compute_s >= memory_s else "memory",
            "roofline_images_per_s": batch / bound,
            # Model FLOPs (analytic) over peak at the bound. It passes 100 % where XLA runs
            # fewer FLOPs than the analytic convention counts (the discriminator pass in G's
            # update needs no weight gradient); the FLOPs XLA runs give the hardware ceiling.
            "mfu_ceiling": analytic * batch / chips / bound / chip.peak_bf16_flops,
            "flops_utilization_ceiling": compute_s / bound,
        }
        made = steps.get("derivation")
        if made is not None and made.flops and made.bytes_accessed:
            out["derive_cost"] = derive_cost(
                chip, train.flops, train.bytes_accessed, made.flops, made.bytes_accessed
            ) | {"flops_per_image": made.flops * chips / batch}
        host_rate = batch / hosts / bound
        vcpus = HOST_VCPUS.get((chip.family, chips // hosts))
        per_core = images_per_core_s[path]
        cores = host_rate / per_core
        out["host_input"] = {
            "per_host_batch": batch // hosts,
            "images_per_s_needed": host_rate,
            "images_per_core_s": per_core,
            "cores_needed": cores,
            "host_vcpus": vcpus,
            "host_can_feed": cores <= vcpus if vcpus else "unknown",
        }
    return out


def derive_cost(
    chip: accelerators.Chip, flops: float, nbytes: float, made_flops: float, made_bytes: float
) -> dict[str, float]:
    """What deriving sketches and hints (`made_*`, compiled alone) adds to a train step that
    includes it (`flops`, `nbytes` per chip): shares of its FLOPs and bytes, and of its roofline
    bound, max(FLOPs / peak, bytes / bandwidth), over the same step without them. Compiled
    alone, the derivation reads and writes its batch, which the fused step need not: an upper
    bound."""

    def roofline(f: float, b: float) -> float:
        return max(f / chip.peak_bf16_flops, b / chip.hbm_bytes_per_s)

    without = roofline(flops - made_flops, nbytes - made_bytes)
    return {
        "bytes_accessed_per_chip": made_bytes,
        "share_of_step_flops": made_flops / flops,
        "share_of_step_bytes": made_bytes / nbytes,
        "roofline_s": roofline(made_flops, made_bytes),
        "added_to_roofline_bound": roofline(flops, nbytes) / without - 1.0,
    }


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The report as a few human-readable lines (the JSON has every figure)."""
    r = result
    lines = [
        f"{r['topology']} ({r['topology_name']}, {r['device_kind']}): {r['hosts']} hosts x "
        f"{r['chips_per_host']} chips; batch {r['batch_size']} = {r['per_chip_batch']} per chip, "
        f"{r['per_host_batch']} per host; upsample {r['upsample_impl']}"
    ]
    for name in ("train", "eval", "derivation"):
        if name in r:
            s = r[name]
            lines.append(
                f"{name}: args {s['argument_gib']:.2f} + temp {s['temp_gib']:.2f} GiB, peak "
                f"{s['peak_gib']:.2f} of {r['hbm_gib']:.2f} GiB HBM "
                f"({100 * s['peak_fraction_of_hbm']:.0f} %): "
                f"{'fits' if s['fits'] else 'DOES NOT FIT'}; compiled in {s['compile_s']:.0f} s"
            )
    if "flops_per_image_xla" in r:
        lines.append(
            f"FLOPs/image: XLA {r['flops_per_image_xla'] / 1e9:.1f} G, analytic "
            f"{r['flops_per_image_analytic'] / 1e9:.1f} G (x{r['xla_over_analytic']:.2f})"
        )
    if "roofline_step_s" in r:
        h = r["host_input"]
        lines += [
            f"bytes accessed/chip {r['bytes_accessed_per_chip'] / GIB:.2f} GiB, intensity "
            f"{r['arithmetic_intensity']:.0f} FLOP/B (ridge {r['ridge_intensity']:.0f}); roofline "
            f"step >= {1e3 * r['roofline_step_s']:.1f} ms ({r['roofline_bound_by']}-bound), "
            f"<= {r['roofline_images_per_s']:.0f} img/s, MFU ceiling "
            f"{100 * r['mfu_ceiling']:.0f} % (analytic FLOPs; XLA's: "
            f"{100 * r['flops_utilization_ceiling']:.0f} %)",
            f"host input ({r['derive']} path): {h['images_per_s_needed']:.0f} img/s per host at "
            f"that bound = {h['cores_needed']:.1f} cores at {h['images_per_core_s']:.0f} "
            f"img/core-s (host has {h['host_vcpus'] or 'an unknown number of'} vCPUs)",
        ]
    if "derive_cost" in r:
        d = r["derive_cost"]
        lines.append(
            f"deriving sketches and hints on device: {d['flops_per_image'] / 1e6:.1f} MFLOP/image "
            f"= {100 * d['share_of_step_flops']:.2f} % of the step's FLOPs, "
            f"{100 * d['share_of_step_bytes']:.2f} % of its bytes, "
            f"+{100 * d['added_to_roofline_bound']:.2f} % on its roofline bound (compiled alone)"
        )
    if "max_per_chip_batch" in r:
        lines.append(
            f"largest per-chip batch that fits: {r['max_per_chip_batch']} "
            f"(peak {r['max_batch_peak_gib']:.2f} GiB)"
        )
    return lines
