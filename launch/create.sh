#!/usr/bin/env bash
# Creates a Cloud TPU VM or pod slice: on demand, --spot, or through a queued resource.
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

USAGE="Usage: launch/create.sh --zone=ZONE --project=PROJECT [--type=TYPE] [--name=NAME]
                        [--spot] [--queued] [--version=RUNTIME] [--dry-run]
Creates the TPU VM (one host, e.g. v5litepod-8) or pod slice (several hosts, e.g. v4-32).
  --spot      spot capacity: cheaper, can be reclaimed at any time (training resumes)
  --queued    request through a queued resource (waits for capacity instead of failing);
              delete.sh --queued deletes it
  --version   TPU software version (default: the one for --type)"
SPOT=0
QUEUED=0
VERSION=""
parse_common "$USAGE" "$@"
for arg in "${REST[@]+"${REST[@]}"}"; do
  case $arg in
    --spot) SPOT=1 ;;
    --queued) QUEUED=1 ;;
    --version=*) VERSION=${arg#*=} ;;
    *) unknown "$arg" ;;
  esac
done
VERSION=${VERSION:-$(runtime_version)}
extra=()
[[ $SPOT == 1 ]] && extra+=(--spot)

echo "# $TYPE: $(host_count) host(s), runtime $VERSION"
# shellcheck disable=SC2046  # where() prints two flags
if [[ $QUEUED == 1 ]]; then
  run gcloud compute tpus queued-resources create "$NAME" --node-id="$NAME" $(where) \
    --accelerator-type="$TYPE" --runtime-version="$VERSION" "${extra[@]+"${extra[@]}"}"
  # The VM exists once the request is ACTIVE; setup.sh needs it.
  run gcloud compute tpus queued-resources describe "$NAME" $(where) --format='value(state.state)'
else
  run gcloud compute tpus tpu-vm create "$NAME" $(where) \
    --accelerator-type="$TYPE" --version="$VERSION" "${extra[@]+"${extra[@]}"}"
fi
