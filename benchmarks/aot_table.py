"""Prints docs/tpu.md's "Sizing for a TPU slice" tables (pix2pix-256, then "Other families") from
benchmarks/results/aot-*.json (written by benchmarks/aot_table.sh); the host column divides each
row's images/s per host by `bench data`'s images per core-second of each data.derive path
(jaxcolor.bench.MEASURED_PER_CORE):
    .venv/bin/python benchmarks/aot_table.py"""

import importlib.util
import json
import pathlib

from jaxcolor.bench import MEASURED_PER_CORE as PER_CORE
from jaxcolor.core import slice_sizing

REPO = pathlib.Path(__file__).parent.parent
RESULTS = REPO / "benchmarks" / "results"
# "Other families": search-<name>-v5litepod-8 -> (row label, config file, its measurement).
FAMILIES = {
    "unet_scribbles": ("unet_scribbles.py (160x256)", "unet_scribbles", "MAX_PER_CHIP_BATCH"),
    "reference-novgg": ("reference.py", "reference", "MAX_PER_CHIP_BATCH"),
    "reference": ("reference.py with VGG-19 losses", "reference", "MAX_PER_CHIP_BATCH_VGG"),
    "resunet_palette": ("resunet_palette.py (512 px)", "resunet_palette", "MAX_PER_CHIP_BATCH"),
}
ORDER = ["v5litepod-8", "v6e-8", "v4-32", "v5p-64"]
# Peak bf16 FLOP/s by device kind (jaxcolor/core/accelerators.py's CHIPS).
PEAK = {"TPU v5 lite": 197e12, "TPU v6 lite": 918e12, "TPU v4": 275e12, "TPU v5": 459e12}


def main() -> None:
    runs = {
        p.stem.removeprefix("aot-"): json.loads(p.read_text()) for p in RESULTS.glob("aot-*.json")
    }
    # The largest per-chip batch that fits depends on the chip (and the model), not the config's
    # batch: pod-* runs searched it.
    max_batch = {
        r["topology"]: r.get("max_per_chip_batch")
        for k, r in runs.items()
        if "max_per_chip_batch" in r and (k.startswith("pod-") or k.startswith("search-v"))
    }  # pix2pix-256 (search-<family>-* runs are other networks)
    chosen = {r["topology"]: r["per_chip_batch"] for k, r in runs.items() if k.startswith("pod-")}
    print(
        "| config | topology (hosts x chips) | per-chip batch | compile s (train / eval) "
        "| peak GiB / HBM (train) | FLOPs/image XLA / analytic | roofline step bound "
        "| MFU ceiling (analytic / XLA FLOPs) | host input needed (host / device path) "
        "| max per-chip batch "
        "| chosen per-chip batch (pod.py) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for config in ("default", "pod"):
        for topology in ORDER:
            r = runs.get(f"{config}-{topology}")
            if r is None:
                continue
            train, ev = r["train"], r.get("eval", {})
            h = r["host_input"]
            name = "default.py" if config == "default" else f"pod.py:tpu={topology}"
            peak = max_batch.get(topology)
            compute_s = r["flops_per_image_xla"] * r["per_chip_batch"] / PEAK[r["device_kind"]]
            hardware = compute_s / r["roofline_step_s"]
            print(
                f"| {name} | {topology} ({r['hosts']} x {r['chips_per_host']}) "
                f"| {r['per_chip_batch']} (global {r['batch_size']}) "
                f"| {train['compile_s']:.0f} / {ev['compile_s'] if ev else '-'} "
                f"| {train['peak_gib']:.2f} / {r['hbm_gib']:.0f} "
                f"| {r['flops_per_image_xla'] / 1e9:.1f} G / "
                f"{r['flops_per_image_analytic'] / 1e9:.1f} G "
                f"| {1e3 * r['roofline_step_s']:.1f} ms ({r['roofline_bound_by']}) "
                f"| {100 * r['mfu_ceiling']:.0f} % / {100 * hardware:.0f} % "
                f"| {h['images_per_s_needed']:.0f} img/s/host = "
                f"{h['images_per_s_needed'] / PER_CORE['host']:.0f} / "
                f"{h['images_per_s_needed'] / PER_CORE['device']:.0f} cores "
                f"| {peak if peak is not None else 'not searched'} "
                f"| {chosen.get(topology, '-')} |"
            )
    print()
    families(runs)


def _config_module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def families(runs: dict) -> None:
    """The other networks' v5e searches and what their configs choose from them per chip (before
    the global cap; other chips estimated by slice_sizing.max_per_chip)."""
    print(
        "| config | per-chip batch: peak GiB / 16, compile s | FLOPs/image XLA / analytic "
        "| roofline step bound | max per-chip batch v5e (fits / does not) "
        "| chosen per chip before the 4096 global cap: v5e, v6e and v4, v5p (estimated max) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for key, (label, config, attr) in FAMILIES.items():
        r = runs.get(f"search-{key}-v5litepod-8")
        if r is None:
            continue
        measured = getattr(_config_module(config), attr)
        assert measured["v5litepod"] == r["max_per_chip_batch"], (config, attr, "is stale")
        rejected = min(t["per_chip_batch"] for t in r["search_tried"] if not t["fits"])
        chosen = [str(slice_sizing.per_chip_batch(measured, "v5litepod"))] + [
            f"{slice_sizing.per_chip_batch(measured, chip)} "
            f"({slice_sizing.max_per_chip(measured, chip)})"
            for chip in ("v6e", "v5p")
        ]
        train = r["train"]
        print(
            f"| {label} | {r['per_chip_batch']}: {train['peak_gib']:.2f}, "
            f"{train['compile_s']:.0f} "
            f"| {r['flops_per_image_xla'] / 1e9:.1f} G / "
            f"{r['flops_per_image_analytic'] / 1e9:.1f} G "
            f"| {1e3 * r['roofline_step_s']:.1f} ms ({r['roofline_bound_by']}) "
            f"| {r['max_per_chip_batch']} / {rejected} | {', '.join(chosen)} |"
        )


if __name__ == "__main__":
    main()
