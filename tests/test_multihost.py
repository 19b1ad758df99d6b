"""Multi-process (multi-host) training: several local CPU processes joined by jax.distributed.

Each process gets 2 CPU devices, as each host of a TPU pod gets its own chips. The processes
train, checkpoint and resume, and must end where a single process with the same global batch
and seed ends.
"""

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import REPO, load_config
from tensorboard.backend.event_processing import event_accumulator

from jaxcolor import checkpoint, parallel
from jaxcolor.data import pipeline
from jaxcolor.run.loop import train_and_evaluate

DEVICES_PER_PROCESS = 2
# configs/tiny.py shrunk like the tiny_config fixture (32 px, 5 downsamplings, width 8).
OVERRIDES = {
    "image_size": 32,
    "batch_size": 8,
    "eval_batch_size": 8,
    "log_every": 1,
    "eval_every": 2,
    "checkpoint_every": 2,
    "data.num_synthetic": 64,
    "data.num_workers": 0,
    "model.generator.num_downs": 5,
    "model.generator.ngf": 8,
    "model.discriminator.ndf": 8,
    "model.discriminator.n_layers": 2,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(num_processes: int, workdir: pathlib.Path, cache: pathlib.Path, **overrides):
    """Starts the `jaxcolor.train` processes of one run; returns [(Popen, log path)]."""
    port = _free_port()
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        JAX_PLATFORMS="cpu",
        # Gloo's collectives wait 30 s by default; 4 processes compiling on 2 busy cores
        # can arrive further apart than that.
        XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES_PER_PROCESS} "
        "--xla_cpu_collective_timeout_seconds=600 "
        "--xla_cpu_collective_call_terminate_timeout_seconds=600",
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    )
    flags = [f"--config.{k}={v}" for k, v in (OVERRIDES | overrides).items()]
    processes = []
    for i in range(num_processes):
        log = workdir.parent / f"{workdir.name}-{num_processes}p-{i}-{time.monotonic_ns()}.log"
        cmd = [
            sys.executable,
            "-m",
            "jaxcolor.train",
            f"--config={REPO / 'configs' / 'tiny.py'}",
            f"--workdir={workdir}",
            f"--coordinator_address=localhost:{port}",
            f"--num_processes={num_processes}",
            f"--process_id={i}",
            *flags,
        ]
        with log.open("w") as out:
            processes.append((subprocess.Popen(cmd, env=env, stdout=out, stderr=out), log))
    return processes


def _wait(processes, timeout: float = 300) -> list[str]:
    """Waits for every process; all must exit 0. Returns their logs."""
    deadline = time.monotonic() + timeout
    for process, _ in processes:
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p, _ in processes:
                p.kill()
    logs = [log.read_text() for _, log in processes]
    for (process, _), text in zip(processes, logs, strict=True):
        assert process.returncode == 0, text[-4000:]
    return logs


def _run(num_processes: int, workdir: pathlib.Path, cache: pathlib.Path, **overrides):
    return _wait(_start(num_processes, workdir, cache, **overrides))


def _final_state(config, workdir: pathlib.Path, step: int):
    """The checkpoint of `step`, restored here (one process, 8 devices) as numpy arrays."""
    from jaxcolor.training.state import create_train_state

    mesh = parallel.create_mesh(-1)
    state, _ = create_train_state(config, mesh=mesh)
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints", config)
    try:
        return jax.device_get(ckpt.restore(state, step, ckpt.metadata(step)))
    finally:
        ckpt.close()


def _config(tiny_config):
    c = tiny_config
    for key, value in OVERRIDES.items():
        node = c
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


def _events(workdir: pathlib.Path) -> list[pathlib.Path]:
    return sorted((workdir / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_processes_train_checkpoint_resume_and_match_one_process(
    tiny_config, tmp_path, compile_cache
):
    c = _config(tiny_config)
    run = tmp_path / "run"
    # 2 processes x 2 devices for steps 1-2, then 4 processes x 2 devices resume for 3-4: the
    # state restores onto the new mesh and the data stream restarts at the saved step (the
    # global batches do not depend on the number of processes).
    logs2 = _run(2, run, compile_cache, num_steps=2)
    assert len(_events(run)) == 1  # one TensorBoard writer among the processes
    logs4 = _run(4, run, compile_cache, num_steps=4)
    assert len(_events(run)) == 2  # one per run, both by process 0

    for logs, last in ((logs2, 2), (logs4, 4)):
        # Only process 0 prints the progress line.
        assert re.search(rf"step {last}/{last} \(100%\)", logs[0]), logs[0][-2000:]
        assert not any(re.search(r"step \d+/\d+ \(", text) for text in logs[1:]), logs[1]
    assert "Process 3 of 4 (2 local devices, 8 in all)" in logs4[3]
    assert "Resuming from step 2" in logs4[0]
    assert "saved by 2 processes, this run has 4" in logs4[0]
    acc = event_accumulator.EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/g_l1")] == [1, 2, 3, 4]  # no duplicates
    steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [2, 4]

    c.num_steps = 4
    reference = jax.device_get(train_and_evaluate(c, str(tmp_path / "one")))
    restored = _final_state(c, run, 4)
    flat_ref, tree_ref = jax.tree.flatten(reference)
    flat_run, tree_run = jax.tree.flatten(restored)
    assert tree_ref == tree_run
    worst = max(
        float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
        for a, b in zip(flat_ref, flat_run, strict=True)
    )
    print(f"max |1 process - 2+4 processes| over the state: {worst:.3g}")
    for a, b in zip(flat_ref, flat_run, strict=True):
        # One wrong row or augmentation moves parameters by about the lr (1e-3) per step.
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=3e-5)


@pytest.mark.slow
@pytest.mark.parametrize("num_processes", [2])
def test_sigterm_to_one_host_saves_the_same_step_everywhere_and_exits_0(
    tmp_path, compile_cache, num_processes
):
    run = tmp_path / "run"
    processes = _start(num_processes, run, compile_cache, num_steps=100000, checkpoint_every=100000)
    first, first_log = processes[0]
    deadline = time.monotonic() + 240
    while "step 3/100000" not in first_log.read_text():
        assert first.poll() is None and time.monotonic() < deadline, first_log.read_text()
        time.sleep(0.01)
    # A maintenance event or spot reclaim reaches the hosts one at a time.
    processes[-1][0].send_signal(signal.SIGTERM)
    logs = _wait(processes, timeout=180)
    saved = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert len(saved) == 1 and saved[0] >= 3, saved
    assert f"Preempted: saved step {saved[0]}" in logs[0]
    assert "Preemption notice" in logs[0]
    assert all("Traceback" not in text for text in logs)


def test_process_rows_concatenate_to_the_one_process_stream():
    import grain

    stream = grain.MapDataset.range(40)
    one = list(pipeline.ProcessRows(stream, 8, 0, 1))
    for n in (2, 4):
        parts = [list(pipeline.ProcessRows(stream, 8, i, n)) for i in range(n)]
        assert all(len(p) == len(one) // n for p in parts)
        # Step s of the global batch is process 0's rows, then process 1's, ...
        joined = [x for s in range(5) for p in parts for x in p[s * 8 // n : (s + 1) * 8 // n]]
        assert joined == one


def test_distributed_flags_must_come_together():
    from jaxcolor.core.errors import ConfigError

    with pytest.raises(ConfigError, match="needs all three"):
        parallel.initialize_distributed("localhost:1234", 0, -1)
    with pytest.raises(ConfigError, match="process_id=2 must be below"):
        parallel.initialize_distributed("localhost:1234", 2, 2)
    assert parallel.initialize_distributed() is False  # one host, no TPU slice: nothing to join


@pytest.mark.parametrize(
    ("chips", "batch", "eval_batch", "checkpoint_every"),
    [("8", 64, 16, 2000), ("16", 128, 16, 1000), ("32", 256, 32, 500), ("64", 512, 64, 250)],
)
def test_pod_config_scales_with_the_chip_count(chips, batch, eval_batch, checkpoint_every):
    from jaxcolor.training import config_checks

    c = load_config("pod", f"tpu={chips}")
    config_checks.validate(c)
    assert (c.batch_size, c.eval_batch_size, c.checkpoint_every) == (
        batch,
        eval_batch,
        checkpoint_every,
    )
    assert c.image_size == 256 and c.compute_dtype == "bfloat16"
    assert c.num_steps * c.batch_size == 100_000 * 64  # the same number of images as default.py
    assert c.optimizer.learning_rate == pytest.approx(2e-4 * (batch / 64) ** 0.5)


def test_pod_config_needs_the_chip_count():
    with pytest.raises(ValueError, match=r"configs/pod.py:tpu=16 for a v4-32"):
        load_config("pod", "")
    with pytest.raises(
        ValueError, match=r"configs/pod.py:tpu='v5litepod-12' is not a known .* v5litepod-16"
    ):
        load_config("pod", "tpu=v5litepod-12")


@pytest.mark.parametrize(
    ("accelerator", "per_chip", "eval_batch"),
    [("v5litepod-8", 512, 16), ("v6e-8", 512, 16), ("v4-32", 256, 16), ("v5p-64", 128, 32)],
)
def test_pod_config_sizes_the_batch_by_chip_type(accelerator, per_chip, eval_batch):
    from jaxcolor.core import accelerators
    from jaxcolor.training import config_checks

    c = load_config("pod", f"tpu={accelerator}")
    config_checks.validate(c)
    chips = accelerators.slice_of(accelerator).chips
    assert (c.batch_size, c.eval_batch_size) == (per_chip * chips, eval_batch)
    assert c.batch_size <= 4096 and c.num_steps * c.batch_size == pytest.approx(6.4e6, rel=1e-3)
    assert c.optimizer.learning_rate == 1e-3  # sqrt(4096 / 64) * 2e-4 capped
