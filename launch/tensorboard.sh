#!/usr/bin/env bash
# TensorBoard on worker 0 reading the gs:// logdir, reached through an SSH tunnel.
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

USAGE="Usage: launch/tensorboard.sh --zone=ZONE --project=PROJECT --workdir=gs://BUCKET/RUN
                             [--port=6006] [--name=NAME] [--dry-run]
Starts TensorBoard on worker 0 on WORKDIR/tensorboard and forwards it to http://localhost:PORT
here. Ctrl-C closes the tunnel and TensorBoard. It reads gs:// through gcsfs (--load_fast=false;
the default would start TensorBoard's Rust data server, which has its own GCS client)."
WORKDIR=""
PORT=6006
parse_common "$USAGE" "$@"
for arg in "${REST[@]+"${REST[@]}"}"; do
  case $arg in
    --workdir=*) WORKDIR=${arg#*=} ;;
    --port=*) PORT=${arg#*=} ;;
    *) unknown "$arg" ;;
  esac
done
[[ $WORKDIR == gs://* ]] || die "--workdir=gs://BUCKET/PATH is required (the training run's)"
[[ $PORT =~ ^[0-9]+$ ]] || die "--port=$PORT: a port number"
echo "# then open http://localhost:$PORT"
# --load_fast=false: TensorBoard's Python reader, through gcsfs (tests/test_gcs.py runs this
# command against a GCS emulator). The default, auto, starts its Rust data server for gs://.
# shellcheck disable=SC2046  # where() prints two flags
run gcloud compute tpus tpu-vm ssh "$NAME" $(where) --worker=0 \
  --command="~/jaxcolor/.venv/bin/tensorboard --logdir=$(quote "$WORKDIR/tensorboard") --load_fast=false --port=$PORT" \
  -- -L "$PORT:localhost:$PORT"
