"""Prints the README's "Sizing for a TPU slice" table from benchmarks/results/aot-*.json
(written by benchmarks/aot_table.sh):  python benchmarks/aot_table.py"""

import json
import pathlib

RESULTS = pathlib.Path(__file__).parent / "results"
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
        "| MFU ceiling (analytic / XLA FLOPs) | host input needed | max per-chip batch "
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
            name = "default.py" if config == "default" else f"pod.py:{topology}"
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
                f"| {h['images_per_s_needed']:.0f} img/s/host = {h['cores_needed']:.0f} cores "
                f"| {peak if peak is not None else 'not searched'} "
                f"| {chosen.get(topology, '-')} |"
            )


if __name__ == "__main__":
    main()
