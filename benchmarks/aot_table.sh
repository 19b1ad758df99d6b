#!/usr/bin/env bash
# docs/tpu.md's "Sizing for a TPU slice" table: `bench aot` for each (config, topology), one at a
# time, each result in benchmarks/results/aot-<config>-<topology>.json (an existing file is
# kept: delete it to rerun). A pix2pix-256 compile takes 4-12 min on 2 busy cores.
#   nice -n 10 benchmarks/aot_table.sh [PYTHON]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
OUT=benchmarks/results
mkdir -p "$OUT"

run() {  # run NAME ARGS...: one bench aot into $OUT/aot-NAME.json, its log next to it
  local name=$1
  shift
  if [[ -s "$OUT/aot-$name.json" ]]; then
    echo "skip $name (exists)"
    return
  fi
  echo "$(date -u +%H:%M:%S) $name: $*"
  "$PY" -m jaxcolor.bench aot "$@" --json "$OUT/aot-$name.json" \
    >/dev/null 2>"$OUT/aot-$name.log" || echo "$name failed: $(tail -1 "$OUT/aot-$name.log")"
  grep -v -e '^[WIE]0000' -e '^WARNING' -e 'Source Location' -e 'libtpu_init' "$OUT/aot-$name.log"
}

# configs/pod.py at its chosen per-chip batch (the first with --search from there, for the
# largest batch a v5e fits), then configs/default.py as it is (global batch 64; eval_batch_size
# raised to split over v5p-64's 32 chips). --no_eval: the train step is the one that sizes the
# batch, and each eval compile would cost minutes here.
run pod-v5litepod-8 --config configs/pod.py:tpu=v5litepod-8 --topology v5litepod-8 --search
run pod-v5p-64 --config configs/pod.py:tpu=v5p-64 --topology v5p-64 --no_eval
run pod-v4-32 --config configs/pod.py:tpu=v4-32 --topology v4-32 --no_eval
run default-v5litepod-8 --config configs/default.py --topology v5litepod-8 --no_eval
run pod-v6e-8 --config configs/pod.py:tpu=v6e-8 --topology v6e-8 --no_eval
run default-v5p-64 --config configs/default.py --topology v5p-64 --no_eval
run default-v4-32 --config configs/default.py --topology v4-32 --no_eval
run default-v6e-8 --config configs/default.py --topology v6e-8 --no_eval
# The largest per-chip batch of the other chips. v6e and v5p start from a per-chip batch near the
# issue's figures (1376, 5376), as each batch that fits is a full compile (5-15 min here); JAX's
# persistent cache does not help, it cannot load executables for compile-only devices.
run search-v4-32 --config configs/pod.py:tpu=v4-32 --topology v4-32 --no_eval --search
run search-v6e-8 --config configs/pod.py:tpu=v6e-8 --topology v6e-8 --no_eval --batch_size 1024 --search
run search-v5p-64 --config configs/pod.py:tpu=v5p-64 --topology v5p-64 --no_eval --batch_size 4096 \
  --search
# Other families on a v5e (configs/unet_scribbles.py's MAX_PER_CHIP_BATCH).
run search-unet_scribbles-v5litepod-8 --config configs/unet_scribbles.py --topology v5litepod-8 \
  --no_eval --batch_size 64 --search
# configs/reference.py without and with its VGG-19 losses (the weights file need not exist: bench
# aot builds VGG from shapes) and configs/resunet_palette.py (512 px), for their
# MAX_PER_CHIP_BATCH; then one estimate for another chip, unet_scribbles on a v6e-8.
run search-reference-novgg-v5litepod-8 --config configs/reference.py --topology v5litepod-8 \
  --no_eval --batch_size 128 --search
run search-reference-v5litepod-8 --config configs/reference.py:vgg=vgg19-dcbb9e9d.pth \
  --topology v5litepod-8 --no_eval --batch_size 64 --search
run search-resunet_palette-v5litepod-8 --config configs/resunet_palette.py \
  --topology v5litepod-8 --no_eval --batch_size 16 --search --search_step 2
run unet_scribbles-v6e-8 --config configs/unet_scribbles.py:tpu=v6e-8 --topology v6e-8 --no_eval
