#!/usr/bin/env bash
# Deletes the TPU VM / pod slice (or its queued resource). The gs:// workdir stays.
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

USAGE="Usage: launch/delete.sh --zone=ZONE --project=PROJECT [--name=NAME] [--queued] [--dry-run]
Deletes the slice; --queued deletes the queued resource created by create.sh --queued (and its
VM). Checkpoints and logs on gs:// are kept."
QUEUED=0
parse_common "$USAGE" "$@"
for arg in "${REST[@]+"${REST[@]}"}"; do
  case $arg in
    --queued) QUEUED=1 ;;
    *) unknown "$arg" ;;
  esac
done
# shellcheck disable=SC2046  # where() prints two flags
if [[ $QUEUED == 1 ]]; then
  run gcloud compute tpus queued-resources delete "$NAME" $(where) --force --quiet
else
  run gcloud compute tpus tpu-vm delete "$NAME" $(where) --quiet
fi
