#!/usr/bin/env bash
# Follows the training log of one worker (default 0, the one that prints progress), or all.
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

USAGE="Usage: launch/logs.sh --zone=ZONE --project=PROJECT [--name=NAME] [--worker=N|all]
                      [--lines=N] [--dry-run]
Follows ~/jaxcolor-train.log on worker N (default 0: only process 0 prints the progress line;
the others log warnings and errors). --worker=all prints the last lines of every worker's log."
WORKER=0
LINES=50
parse_common "$USAGE" "$@"
for arg in "${REST[@]+"${REST[@]}"}"; do
  case $arg in
    --worker=*) WORKER=${arg#*=} ;;
    --lines=*) LINES=${arg#*=} ;;
    *) unknown "$arg" ;;
  esac
done
[[ $LINES =~ ^[0-9]+$ ]] || die "--lines=$LINES: a number"
if [[ $WORKER == all ]]; then
  ssh_all "echo \"== \$(hostname)\"; tail -n $LINES ~/jaxcolor-train.log"
else
  [[ $WORKER =~ ^[0-9]+$ ]] || die "--worker=$WORKER: a worker number or all"
  # shellcheck disable=SC2046  # where() prints two flags
  run gcloud compute tpus tpu-vm ssh "$NAME" $(where) --worker="$WORKER" \
    --command="tail -n $LINES -F ~/jaxcolor-train.log"
fi
