#!/usr/bin/env bash
# Copies this checkout to every worker and installs it in ~/jaxcolor/.venv (Python 3.11 via uv).
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

USAGE="Usage: launch/setup.sh --zone=ZONE --project=PROJECT [--name=NAME] [--dry-run]
Packs this checkout (without .git, .venv, runs/), copies it to all workers and installs
requirements-tpu.txt (jax[tpu] pinned) and jaxcolor into ~/jaxcolor/.venv on each, with a
Python 3.11 from uv (the TPU images' system python3 may be older). Rerun after code changes:
it replaces the code and keeps the venv."
parse_common "$USAGE" "$@"
for arg in "${REST[@]+"${REST[@]}"}"; do
  unknown "$arg"
done

TARBALL=${TMPDIR:-/tmp}/jaxcolor-$NAME.tar.gz
run tar -czf "$TARBALL" --exclude=.git --exclude=.venv --exclude=runs --exclude=__pycache__ \
  -C "$REPO_DIR" .
# shellcheck disable=SC2046  # where() prints two flags
run gcloud compute tpus tpu-vm scp "$TARBALL" "$NAME:~/jaxcolor.tar.gz" $(where) --worker=all
# shellcheck disable=SC2016  # expanded on the worker
INSTALL='set -e
mkdir -p ~/jaxcolor && cd ~/jaxcolor
find . -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
tar -xzf ~/jaxcolor.tar.gz
export PATH=$HOME/.local/bin:$PATH
command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh
[ -x .venv/bin/python ] || uv venv --python 3.11 --seed .venv
uv pip install --python .venv/bin/python -r requirements-tpu.txt -e .
.venv/bin/python -c "import jax; print(jax.process_index(), jax.local_device_count(), jax.device_count())"'
ssh_all "$INSTALL"
