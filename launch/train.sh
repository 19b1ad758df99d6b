#!/usr/bin/env bash
# Starts (or, after a preemption, resumes) training on every worker at once, detached.
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

USAGE="Usage: launch/train.sh --zone=ZONE --project=PROJECT --workdir=gs://BUCKET/RUN
                       [--config=configs/pod.py] [--name=NAME] [--dry-run] [-- TRAIN FLAGS]
Runs python -m jaxcolor.train on all workers (--worker=all), detached with nohup: one process per
host, joined by jax.distributed (detected on TPU slices). Each worker appends to
~/jaxcolor-train.log (see logs.sh). The workdir must be on gs:// so that every host sees the same
checkpoints; rerunning the same command resumes from the newest one.
  --workdir   gs://BUCKET/PATH for TensorBoard logs, checkpoints and the compilation cache
  --config    config file in the repository (default configs/pod.py:tpu=TYPE, sized for --type)
  --stop      stop the training processes started by this script instead
  -- ...      further flags for jaxcolor.train, e.g. -- --config.num_steps=50000"
WORKDIR=""
CONFIG=""
STOP=0
TRAIN_FLAGS=()
parse_common "$USAGE" "$@"
set -- "${REST[@]+"${REST[@]}"}"
while (($#)); do
  case $1 in
    --workdir=*) WORKDIR=${1#*=} ;;
    --config=*) CONFIG=${1#*=} ;;
    --stop) STOP=1 ;;
    --)
      shift
      TRAIN_FLAGS=("$@")
      break
      ;;
    *) unknown "$1" ;;
  esac
  shift
done

if [[ $STOP == 1 ]]; then
  # shellcheck disable=SC2016  # expanded on the worker
  ssh_all 'if [ -f ~/jaxcolor-train.pid ]; then kill "$(cat ~/jaxcolor-train.pid)" || true; fi'
  exit 0
fi
[[ $WORKDIR == gs://* ]] || die "--workdir=gs://BUCKET/PATH is required: every host must see the same checkpoints"
CONFIG=${CONFIG:-configs/pod.py:tpu=$TYPE}
[[ -f $REPO_DIR/${CONFIG%%:*} ]] || die "--config=$CONFIG: no such file in $REPO_DIR"

flags=""
for word in --config="$CONFIG" --workdir="$WORKDIR" "${TRAIN_FLAGS[@]+"${TRAIN_FLAGS[@]}"}"; do
  flags+=" $(quote "$word")"
done
# SIGTERM (maintenance, spot reclaim) reaches the python process itself: it saves and exits 0.
ssh_all "cd ~/jaxcolor && nohup .venv/bin/python -m jaxcolor.train$flags \
>> ~/jaxcolor-train.log 2>&1 < /dev/null & echo \$! > ~/jaxcolor-train.pid"
echo "# $(host_count) worker(s) started. Follow worker 0: launch/logs.sh --name=$NAME --zone=$ZONE --project=$PROJECT"
