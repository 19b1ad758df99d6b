"""Before/after of fast-path changes: `bench train` for several config variants in one process.

    python benchmarks/fast_path.py --config configs/tiny.py --steps 3 \
        "model.generator.upsample_impl=conv_transpose" "model.generator.upsample_impl=subpixel"

Each positional argument is one variant: comma-separated `key=value` config overrides (empty
string = the config as is). Prints one JSON line per variant, then the step-time ratio of each
variant to the first, measured side by side on the same (possibly shared) machine.
"""

from __future__ import annotations

import argparse
import json

from jaxcolor.bench import DEFAULT_CONFIG, load_config
from jaxcolor.run import benchmark


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=DEFAULT_CONFIG, help="default: configs/default.py's base")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("variants", nargs="+")
    args, overrides = p.parse_known_args()
    results = []
    for variant in args.variants:
        extra = [f"--config.{kv}" for kv in variant.split(",") if kv]
        config = load_config(args.config, overrides + extra)
        result = benchmark.bench_train(config, steps=args.steps, warmup=args.warmup)
        results.append((variant, result))
        print(json.dumps({"variant": variant} | result), flush=True)
    base = results[0][1]["step_s"]
    for variant, result in results:
        print(
            f"{variant or '(config)':55s} step {result['step_s']:8.3f} s  "
            f"{result['images_per_s']:8.2f} img/s  step/first {result['step_s'] / base:6.3f}  "
            f"compile {result['compile_s']:.1f} s"
        )


if __name__ == "__main__":
    main()
