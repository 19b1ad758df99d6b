"""Preemption, exact resume, restore onto another mesh, NaN guards and workdir/config errors."""

import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

import flax.struct
import jax
import numpy as np
import pytest
from conftest import REPO
from tensorboard.backend.event_processing import event_accumulator

from jaxcolor import checkpoint, parallel
from jaxcolor.core.errors import CheckpointMismatchError, NonFiniteError, WorkdirError
from jaxcolor.run import loop
from jaxcolor.run.loop import train_and_evaluate

LOSSES = ("g_loss", "g_l1", "g_gan", "d_loss", "d_real", "d_fake", "g_grad_norm", "d_grad_norm")


def _train_scalars(workdir: pathlib.Path, name: str) -> dict[int, float]:
    acc = event_accumulator.EventAccumulator(str(workdir / "tensorboard"))
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(f"train/{name}")}


def _steps(workdir: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def _metadata(workdir: pathlib.Path, step: int) -> dict:
    return json.loads((workdir / "checkpoints" / str(step) / "metadata" / "metadata").read_text())


@pytest.mark.parametrize("ema_decay", [0.0, 0.99])
def test_restarted_run_equals_uninterrupted_run(tiny_config, tmp_path, ema_decay):
    c = tiny_config
    # 64 px / 6 downsamplings puts dropout in the U-Net, so the RNG must be restored too.
    c.image_size, c.model.generator.num_downs = 64, 6
    c.train.ema_decay = ema_decay  # with 0.99, the generator's moving average is restored too
    c.num_steps, c.log_every, c.eval_every, c.checkpoint_every = 6, 1, 100, 100
    whole = train_and_evaluate(c, str(tmp_path / "whole"))

    c.num_steps = 3
    train_and_evaluate(c, str(tmp_path / "halves"))
    c.num_steps = 6
    halves = train_and_evaluate(c, str(tmp_path / "halves"))

    assert _steps(tmp_path / "halves") == [3, 6]
    assert (whole.ema is None) == (ema_decay == 0)
    flat_whole, tree_whole = jax.tree.flatten(jax.device_get(whole))
    flat_halves, tree_halves = jax.tree.flatten(jax.device_get(halves))
    assert tree_whole == tree_halves
    for a, b in zip(flat_whole, flat_halves, strict=True):
        np.testing.assert_array_equal(a, b)  # bitwise: model, optimizer, RNG and data restored
    for name in LOSSES:
        assert _train_scalars(tmp_path / "whole", name) == _train_scalars(
            tmp_path / "halves", name
        ), name


def _cli(workdir: pathlib.Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jaxcolor.train",
        f"--config={REPO / 'configs' / 'tiny.py'}",
        f"--workdir={workdir}",
        "--config.image_size=32",
        "--config.batch_size=8",
        "--config.eval_batch_size=8",
        "--config.model.generator.num_downs=5",
        "--config.model.discriminator.ndf=8",
        "--config.data.num_synthetic=32",
        "--config.log_every=1",
        *overrides,
    ]


def _env(cache: pathlib.Path) -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=str(REPO),
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    )


def _wait_for(process: subprocess.Popen, predicate, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"training exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def test_sigterm_saves_the_current_step_exits_0_and_resumes(tmp_path, compile_cache):
    run = tmp_path / "run"
    log = tmp_path / "log.txt"
    cmd = _cli(
        run,
        "--config.model.generator.ngf=8",
        "--config.num_steps=100000",
        "--config.checkpoint_every=100000",
        "--config.data.num_workers=2",
    )
    with log.open("w") as out:
        # Its own process group, signalled as a whole, as a VM shutdown signals every process
        # (the Grain workers too).
        process = subprocess.Popen(
            cmd, env=_env(compile_cache), stderr=out, stdout=out, start_new_session=True
        )
        _wait_for(process, lambda: "step 3/100000" in log.read_text(), "step 3")
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "SIGTERM received" in text
    saved = _steps(run)
    assert len(saved) == 1 and saved[0] >= 3, saved
    assert f"Preempted: saved step {saved[0]} in {run / 'checkpoints'}" in text
    assert "Traceback" not in text

    cmd[cmd.index("--config.num_steps=100000")] = f"--config.num_steps={saved[0] + 2}"
    done = subprocess.run(cmd, env=_env(compile_cache), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Resuming from step {saved[0]} in {run / 'checkpoints'}" in done.stderr
    assert _steps(run) == [saved[0], saved[0] + 2]


def test_sigkill_during_an_async_save_resumes_from_the_previous_complete_one(
    tmp_path, compile_cache
):
    run = tmp_path / "run"
    # ngf 32 makes the state ~60 MB, so the save of step 10 takes long enough to be caught.
    cmd = _cli(
        run,
        "--config.model.generator.ngf=32",
        "--config.num_steps=40",
        "--config.checkpoint_every=5",
    )
    partial = run / "checkpoints" / "10.orbax-checkpoint-tmp"
    process = subprocess.Popen(
        cmd, env=_env(compile_cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for(process, partial.exists, "the async save of step 10 to start")
    process.kill()
    process.wait(timeout=60)
    assert partial.exists(), "the save finished before the kill; the test did not test anything"
    assert _steps(run) == [5]

    cmd[cmd.index("--config.num_steps=40")] = "--config.num_steps=7"
    done = subprocess.run(cmd, env=_env(compile_cache), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Discarded incomplete checkpoint(s) 10.orbax-checkpoint-tmp" in done.stderr
    assert f"Resuming from step 5 in {run / 'checkpoints'}" in done.stderr
    assert not partial.exists()
    assert _steps(run) == [5, 7]


def test_checkpoint_from_8_devices_continues_on_4(tiny_config, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    tiny_config.num_steps = 2
    train_and_evaluate(tiny_config, str(tmp_path / "run"))
    assert _metadata(tmp_path / "run", 2)["mesh_shape"] == {"data": 8}

    tiny_config.num_steps = 4
    tiny_config.mesh.data = 4
    state = train_and_evaluate(tiny_config, str(tmp_path / "run"))
    assert "Resuming from step 2" in caplog.text
    assert "cannot be used" not in caplog.text  # same processes: the data state maps exactly
    assert int(state.step) == 4
    assert state.g.params["downs"][0]["kernel"].sharding.mesh.devices.size == 4
    assert _metadata(tmp_path / "run", 4)["mesh_shape"] == {"data": 4}
    assert all(np.isfinite(v) for v in _train_scalars(tmp_path / "run", "g_loss").values())


def test_unmappable_data_state_restarts_the_stream_at_the_saved_step(tiny_config, tmp_path, caplog):
    tiny_config.num_steps = 2
    train_and_evaluate(tiny_config, str(tmp_path / "run"))

    caplog.set_level(logging.WARNING)
    tiny_config.num_steps = 4
    tiny_config.data.num_workers = 2  # another iterator layout: the saved state does not fit
    train_and_evaluate(tiny_config, str(tmp_path / "run"))
    assert "data iterator state saved at step 2 cannot be used" in caplog.text
    assert "data.num_workers=0, now 2" in caplog.text
    per_process = parallel.per_process_batch_size(tiny_config.batch_size)
    assert _metadata(tmp_path / "run", 4)["data_start"] == 2 * per_process

    caplog.clear()
    tiny_config.num_steps = 6  # same layout again: the state saved at step 4 maps exactly
    train_and_evaluate(tiny_config, str(tmp_path / "run"))
    assert "cannot be used" not in caplog.text
    assert _metadata(tmp_path / "run", 6)["data_start"] == 2 * per_process


def _poison_steps(monkeypatch, steps: set[int]) -> None:
    """The training batches of `steps` arrive with a NaN in them (float, so NaN fits)."""
    real = parallel.to_global
    calls = {"train": 0}

    def to_global(batch, sharding):
        if batch["sketch"].shape[0] == parallel.per_process_batch_size(8):
            calls["train"] += 1
        if calls["train"] in steps:
            sketch = batch["sketch"].astype(np.float32)
            sketch[0, 0, 0, 0] = np.nan
            batch = batch | {"sketch": sketch}
        return real(batch, sharding)

    monkeypatch.setattr(loop.parallel, "to_global", to_global)


def test_nan_stops_the_run_naming_the_step_and_the_last_good_checkpoint(
    tiny_config, tmp_path, monkeypatch
):
    tiny_config.eval_batch_size = 16  # tells evaluation batches apart from training ones
    tiny_config.num_steps = 6
    _poison_steps(monkeypatch, {3})
    with pytest.raises(NonFiniteError) as error:
        train_and_evaluate(tiny_config, str(tmp_path))
    message = str(error.value)
    assert "at step 3 (" in message and "g_loss=nan" in message
    assert f"last good checkpoint is step 2 in {tmp_path / 'checkpoints'}" in message
    assert _steps(tmp_path) == [2]  # nothing after the bad step was saved


def test_nan_steps_are_skipped_until_too_many_in_a_row(tiny_config, tmp_path, monkeypatch):
    c = tiny_config
    c.eval_batch_size = 16
    c.num_steps, c.log_every, c.checkpoint_every = 8, 1, 100
    c.train.on_nonfinite, c.train.max_nonfinite = "skip", 2
    _poison_steps(monkeypatch, {2, 5, 6})
    with pytest.raises(NonFiniteError, match=r"at step 6 .*2 non-finite steps in a row"):
        train_and_evaluate(c, str(tmp_path))
    # Step 2 was skipped and training went on with finite values; 5 and 6 ended the run.
    assert _train_scalars(tmp_path, "nonfinite_skipped") == {2: 1.0, 3: 1.0, 4: 1.0, 5: 2.0}
    assert all(np.isfinite(_train_scalars(tmp_path, "g_loss")[k]) for k in (1, 3, 4))
    assert not (tmp_path / "checkpoints" / "6").exists()


def test_a_skipped_step_leaves_the_state_unchanged(tiny_config, tmp_path, monkeypatch):
    c = tiny_config
    c.eval_batch_size = 16
    c.num_steps, c.checkpoint_every = 2, 1
    c.train.on_nonfinite = "skip"
    _poison_steps(monkeypatch, {2})
    state = train_and_evaluate(c, str(tmp_path))
    assert int(state.step) == 2

    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", c)
    after_step_1 = ckpt.restore(state, 1, ckpt.metadata(1))
    ckpt.close()
    for a, b in zip(
        jax.tree.leaves(jax.device_get((state.g, state.d))),
        jax.tree.leaves(jax.device_get((after_step_1.g, after_step_1.d))),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_from_before_the_ema_field_restores(tiny_config, tmp_path):
    """Checkpoints written before TrainState had `ema` (its tree has no such key) resume with
    train.ema_decay = 0; turning the EMA on for them is a mismatch naming the key."""
    tiny_config.num_steps = 2
    state = train_and_evaluate(tiny_config, str(tmp_path / "new"))
    old_layout = _TrainStateBeforeEma(state.step, state.rng, state.g, state.d, state.pool)
    ckpt = checkpoint.Checkpointer(tmp_path / "old" / "checkpoints", tiny_config)
    ckpt.save(2, old_layout, _DataIterator())
    ckpt.close()

    ckpt = checkpoint.Checkpointer(tmp_path / "old" / "checkpoints", tiny_config)
    restored = ckpt.restore(state, 2, ckpt.metadata(2))
    ckpt.close()
    assert restored.ema is None
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    tiny_config.num_steps = 3
    assert int(train_and_evaluate(tiny_config, str(tmp_path / "old")).step) == 3
    tiny_config.train.ema_decay, tiny_config.num_steps = 0.999, 4
    with pytest.raises(
        CheckpointMismatchError, match=r"train\.ema_decay: checkpoint 0\.0, config 0\.999"
    ):
        train_and_evaluate(tiny_config, str(tmp_path / "old"))


@flax.struct.dataclass
class _TrainStateBeforeEma:
    """TrainState's fields before train.ema_decay added `ema`."""

    step: Any
    rng: Any
    g: Any
    d: Any
    pool: Any = None


class _DataIterator:
    """A stand-in data iterator for `Checkpointer.save` (its saved state fits no pipeline, so
    a resume restarts the stream at the saved step)."""

    def get_state(self) -> bytes:
        return b"{}"


def test_checkpoint_of_another_model_fails_with_the_differing_key(tiny_config, tmp_path):
    tiny_config.num_steps = 2
    train_and_evaluate(tiny_config, str(tmp_path))
    tiny_config.num_steps = 4
    tiny_config.model.generator.ngf = 16
    with pytest.raises(
        CheckpointMismatchError, match="model.generator.ngf: checkpoint 8, config 16"
    ):
        train_and_evaluate(tiny_config, str(tmp_path))
    assert _steps(tmp_path) == [2]


def test_workdir_problems_are_clear_errors(tiny_config, tmp_path, monkeypatch):
    with pytest.raises(WorkdirError, match="parent directory .*nope does not exist.*mkdir -p"):
        train_and_evaluate(tiny_config, str(tmp_path / "nope" / "run"))
    (tmp_path / "file").write_text("")
    with pytest.raises(WorkdirError, match="parent directory .*file does not exist"):
        train_and_evaluate(tiny_config, str(tmp_path / "file" / "run"))

    class Full:
        free = 1024

    monkeypatch.setattr(loop.shutil, "disk_usage", lambda path: Full)
    with pytest.raises(WorkdirError, match="0 MiB free, but one checkpoint needs about"):
        train_and_evaluate(tiny_config, str(tmp_path / "run"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_unwritable_workdir_is_a_clear_error(tiny_config, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(WorkdirError, match="cannot be written"):
        train_and_evaluate(tiny_config, str(locked / "run"))


def test_cli_reports_workdir_errors_in_one_line(tmp_path, compile_cache):
    done = subprocess.run(
        _cli(tmp_path / "missing" / "run", "--config.num_steps=1"),
        env=_env(compile_cache),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "jaxcolor.train: error: --workdir" in done.stderr
    assert "Traceback" not in done.stderr
