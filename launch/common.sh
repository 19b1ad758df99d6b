# shellcheck shell=bash
# Sourced by the launch scripts: shared options, the gcloud runner and --dry-run.
set -euo pipefail

# shellcheck disable=SC2034  # used by the scripts that source this file
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=${JAXCOLOR_TPU_NAME:-jaxcolor}
ZONE=${JAXCOLOR_ZONE:-}
PROJECT=${JAXCOLOR_PROJECT:-}
TYPE=${JAXCOLOR_TPU_TYPE:-v5litepod-8}
DRY_RUN=0
REST=()

COMMON_HELP="Common options (defaults from the env vars in brackets):
  --name=NAME        TPU VM / pod slice name [JAXCOLOR_TPU_NAME, default jaxcolor]
  --zone=ZONE        zone, e.g. us-west4-a (required) [JAXCOLOR_ZONE]
  --project=PROJECT  Google Cloud project (required) [JAXCOLOR_PROJECT]
  --type=TYPE        accelerator type: v5litepod-8, v6e-8, v4-32, v5p-64, ... [JAXCOLOR_TPU_TYPE]
  --dry-run          print the commands, run nothing
  --help             this text"

# parse_common USAGE "$@": sets NAME ZONE PROJECT TYPE DRY_RUN; other arguments go to REST.
parse_common() {
  local usage=$1
  shift
  local arg
  for arg in "$@"; do
    case $arg in
      --name=*) NAME=${arg#*=} ;;
      --zone=*) ZONE=${arg#*=} ;;
      --project=*) PROJECT=${arg#*=} ;;
      --type=*) TYPE=${arg#*=} ;;
      --dry-run) DRY_RUN=1 ;;
      -h | --help)
        printf '%s\n\n%s\n' "$usage" "$COMMON_HELP"
        exit 0
        ;;
      *) REST+=("$arg") ;;
    esac
  done
  [[ -n $ZONE ]] || die "--zone is required (or set JAXCOLOR_ZONE), e.g. --zone=us-west4-a"
  [[ -n $PROJECT ]] || die "--project is required (or set JAXCOLOR_PROJECT)"
  [[ $NAME =~ ^[a-z][a-z0-9-]*$ ]] || die "--name=$NAME: use lower-case letters, digits and -"
}

die() {
  echo "$(basename "$0"): error: $*" >&2
  exit 2
}

unknown() {
  die "unknown option $1 (see --help)"
}

# Quotes one word for the printed command line (copy-pasteable into bash).
quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# run CMD ARGS...: prints the command, then runs it unless --dry-run.
run() {
  local word line="+"
  for word in "$@"; do
    line+=" $(quote "$word")"
  done
  echo "$line"
  if [[ $DRY_RUN == 0 ]]; then
    "$@"
  fi
}

# The gcloud location flags every command takes.
where() {
  echo "--zone=$ZONE" "--project=$PROJECT"
}

# TPU software version for an accelerator type (Cloud TPU docs, "TPU software versions").
runtime_version() {
  case $TYPE in
    v4-*) echo tpu-ubuntu2204-base ;;
    v5litepod-* | v5e-*) echo v2-alpha-tpuv5-lite ;;
    v5p-*) echo v2-alpha-tpuv5 ;;
    v6e-*) echo v2-alpha-tpuv6e ;;
    *) die "--type=$TYPE: no default --version for it; pass --version=RUNTIME" ;;
  esac
}

# Hosts in a slice: 4 chips per host on v4/v5p, up to 8 on v5e/v6e.
host_count() {
  local chips
  chips=$(chip_count)
  case $TYPE in
    v4-* | v5p-*) echo $(((chips + 3) / 4)) ;;
    *) echo $(((chips + 7) / 8)) ;;
  esac
}

# JAX devices in a slice: v4/v5p names count TensorCores (2 per chip, one device per chip).
chip_count() {
  local n=${TYPE##*-}
  case $TYPE in
    v4-* | v5p-*) echo $((n / 2)) ;;
    *) echo "$n" ;;
  esac
}

# ssh_all COMMAND: runs COMMAND on every worker of the slice at once.
ssh_all() {
  # shellcheck disable=SC2046  # where() prints two flags
  run gcloud compute tpus tpu-vm ssh "$NAME" $(where) --worker=all --command="$1"
}
