#!/usr/bin/env bash
# The README's "Sizing for a TPU slice" table: `bench aot` for each (config, topology), one at a
# time, each result in benchmarks/results/aot-<config>-<topology>.json (an existing file is
# kept: delete it to rerun). About 10-20 min per --search run of default.py on 2 cores.
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

# configs/default.py as it is (global batch 64; eval_batch_size raised to split over 32 chips).
run default-v5litepod-8 --config configs/default.py --topology v5litepod-8 --search
run default-v6e-8 --config configs/default.py --topology v6e-8 --search
run default-v4-32 --config configs/default.py --topology v4-32 --search
run default-v5p-64 --config configs/default.py --topology v5p-64 --search --search-step 64 \
  --config.eval_batch_size=32
