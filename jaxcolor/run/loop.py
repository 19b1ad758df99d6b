"""`train_and_evaluate(config, workdir)`: the whole run, resumable from its workdir."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from jax.sharding import Mesh

from jaxcolor import checkpoint, parallel, profiler, summary
from jaxcolor.core.errors import NonFiniteError, WorkdirError
from jaxcolor.data import pipeline
from jaxcolor.evaluation import evaluator as split_eval
from jaxcolor.evaluation import fixed_batch
from jaxcolor.training import builder, pytorch_weights
from jaxcolor.training.state import TrainState
from jaxcolor.training.step import NONFINITE


class _Evaluation(NamedTuple):
    every: int  # steps between runs (and at the last step)
    evaluate: Callable[[int, TrainState], object]  # (step, state): scores, writes, logs


def _prepare_workdir(path: str) -> epath.Path:
    """Creates the run directory (not its parents: a typo should not grow a tree) and checks
    that it is writable; a gs:// (or other URL) workdir is checked by writing to it."""
    if "://" in str(path):
        workdir = epath.Path(path)
        _check_bucket_writable(path, workdir)
        return workdir
    workdir = epath.Path(path).expanduser().resolve()  # Orbax requires absolute paths
    if not workdir.parent.is_dir():
        raise WorkdirError(
            f"--workdir {path}: the parent directory {workdir.parent} does not exist (or is not "
            f"a directory); create it first (mkdir -p {workdir.parent}) or fix the path."
        )
    try:
        workdir.mkdir(exist_ok=True)
        probe = workdir / f".jaxcolor-write-test-{jax.process_index()}"  # one per process
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise WorkdirError(
            f"--workdir {path} cannot be written ({e.strerror or e}); choose a directory you "
            "can write to."
        ) from e
    return workdir


def _check_bucket_writable(path: str, workdir: epath.Path) -> None:
    """Writes and deletes a probe object, so a missing bucket or missing write access stops
    the run now rather than at the first TensorBoard flush or checkpoint."""
    bucket = str(path).split("://", 1)[1].split("/", 1)[0]
    scheme = str(path).split("://", 1)[0]
    probe = workdir / f".jaxcolor-write-test-{jax.process_index()}"
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except FileNotFoundError as e:  # an upload into an existing bucket never 404s
        raise WorkdirError(
            f"--workdir {path}: the bucket {scheme}://{bucket} does not exist ({e}); create it "
            f"(gcloud storage buckets create {scheme}://{bucket} --location=REGION) or fix the "
            "path."
        ) from e
    except Exception as e:  # any storage client's refusal: 403, no or expired credentials
        raise WorkdirError(
            f"--workdir {path} cannot be written ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else e!r}); give this machine's credentials "
            f"write access to {scheme}://{bucket} or choose another --workdir."
        ) from e


def _compile_cache_dir(config: ml_collections.ConfigDict, workdir: epath.Path) -> str:
    """`compile_cache_dir`: 'auto' = WORKDIR/compile_cache, so a restart skips compilation."""
    path = config.compile_cache_dir
    return str(workdir / "compile_cache") if path == "auto" else path


def _check_free_space(workdir: epath.Path, state: TrainState, keep: int) -> None:
    """Fails before training when not even one checkpoint fits (`state`'s arrays or shapes);
    warns when `keep` may not."""
    if "://" in str(workdir):
        return
    need = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    free = shutil.disk_usage(workdir).free
    if free < 1.1 * need:
        raise WorkdirError(
            f"--workdir {workdir} has {free / 2**20:.0f} MiB free, but one checkpoint needs "
            f"about {need / 2**20:.0f} MiB; free some space or choose another --workdir."
        )
    if free < (keep + 1) * need:
        logging.warning(
            "%s has %.0f MiB free; keep_checkpoints=%d needs about %.0f MiB.",
            workdir,
            free / 2**20,
            keep,
            (keep + 1) * need / 2**20,
        )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains for `config.num_steps`, resuming from the newest checkpoint in `workdir`.

    On SIGTERM (or a multi-host preemption notice) it finishes the current step, saves it,
    waits for the save to commit and returns; rerunning the same call resumes there.
    """
    run = builder.build(config)  # validated, the frozen networks loaded, the state as shapes
    config = run.config  # data.derive decided for the mesh
    workdir = _prepare_workdir(workdir)
    cache = parallel.configure_compilation_cache(_compile_cache_dir(config, workdir))
    mesh = _start(run)
    _check_free_space(workdir, run.state, config.keep_checkpoints)
    train_source, val_source = pipeline.make_sources(config)
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints", config)
    writer = summary.Writer(workdir / "tensorboard")
    with contextlib.ExitStack() as cleanup:  # on any exit: stop catching SIGTERM, commit, close
        cleanup.callback(writer.close)
        cleanup.callback(ckpt.close)
        notice = cleanup.enter_context(checkpoint.PreemptionNotice())
        state, train_iter, start = ckpt.restore_or_start(
            run.state,
            lambda first: iter(pipeline.train_dataset(config, train_source, start=first)),
            start_fresh=lambda: _fresh_state(run),
        )
        summary.log_line(
            f"TensorBoard logs: {writer.logdir}   checkpoints: {ckpt.directory}   "
            f"compilation cache: {cache or 'off'}"
        )
        evaluations = _evaluations(run, val_source, writer)
        if start == 0:  # the untrained generator on the fixed batch: the baseline
            evaluations[0].evaluate(0, state)
        if start >= config.num_steps:
            summary.log_line(
                f"Already at step {start} >= num_steps={config.num_steps}; nothing to do."
            )

        train_step, frozen = run.train_step(), run.frozen
        logger = _metrics_logger(config, writer, ckpt, start)
        batches = _global_batches(train_iter, mesh, logger)
        profiler = _profiler(config, writer)
        cleanup.callback(profiler.stop)
        step, preempted = start, notice.received
        while step < config.num_steps and not preempted:
            step += 1
            profiler.before(step)
            with profiler.annotation(step):
                state, metrics = train_step(state, frozen, next(batches))
            profiler.after(step, (state, metrics))
            logger.buffer(step, metrics)
            preempted = _preempted(step, notice, ckpt)
            last = step == config.num_steps
            for e in evaluations:
                if not preempted and (step % e.every == 0 or last):
                    with logger.paused():  # checked and logged first; its time is not img/s
                        e.evaluate(step, state)
            if preempted or last or ckpt.should_save(step):
                logger.flush()  # never checkpoint a step that went non-finite
                ckpt.save(step, state, train_iter)
        logger.flush()
        _log_end(config, ckpt, writer, start=start, step=step, preempted=preempted)
        return state


def _profiler(config: ml_collections.ConfigDict, writer: summary.Writer) -> profiler.StepProfiler:
    """profile.start_step / num_steps: a trace into the TensorBoard logdir (off by default)."""
    profile = config.profile
    return profiler.StepProfiler(
        writer.logdir, start_step=profile.start_step, num_steps=profile.num_steps
    )


def _start(run: builder.Run) -> Mesh:
    """The run's mesh, collectives started and the evaluation batch checked."""
    parallel.start_collectives(run.mesh)
    parallel.check_batch_size(run.config.eval_batch_size, run.mesh, name="eval_batch_size")
    return run.mesh


def _fresh_state(run: builder.Run) -> TrainState:
    """A fresh run's step-0 state: initialised, or `init_from`'s PyTorch weights loaded in."""
    state = run.init_state()
    return pytorch_weights.init_from(state, run.config) if run.config.init_from else state


def _evaluations(run: builder.Run, val_source, writer) -> list[_Evaluation]:
    """The fixed validation batch's evaluation, then (eval_split_every > 0) the whole split's."""
    config, nets, mesh = run.config, run.nets, run.mesh
    parallel.sync_processes("jaxcolor:first-collective")  # the fixed batch's all-gather
    val_batch = pipeline.validation_batch(config, val_source)
    fixed = fixed_batch.FixedBatchEvaluator(config, nets, run.frozen, mesh, val_batch, writer)
    evaluations = [_Evaluation(config.eval_every, fixed)]
    if config.eval_split_every > 0:
        split = split_eval.SplitEvaluator(
            config,
            nets,
            run.frozen,
            mesh,
            val_source,
            batch_size=config.eval_batch_size,
            max_images=config.eval_max_images,
        )
        log = lambda step, state: split.log(step, state, writer)  # noqa: E731
        evaluations.append(_Evaluation(config.eval_split_every, log))
    return evaluations


def _metrics_logger(config, writer, ckpt, start: int) -> summary.MetricsLogger:
    """The train metrics logger, with the non-finite policy reading each step's flag."""
    return summary.MetricsLogger(
        writer,
        start_step=start,
        num_steps=config.num_steps,
        batch_size=config.batch_size,
        log_every=config.log_every,
        check=_NonFiniteGuard(config, ckpt),
    )


def _global_batches(
    data_iter, mesh: Mesh, logger: summary.MetricsLogger
) -> Iterator[dict[str, jax.Array]]:
    """This process's host batches as global arrays; files passed over are counted."""
    sharding = parallel.batch_sharding(mesh)
    for host_batch in data_iter:
        logger.count("skipped_images", pipeline.pop_skipped(host_batch))
        yield parallel.to_global(host_batch, sharding)


def _preempted(step: int, notice: checkpoint.PreemptionNotice, ckpt) -> bool:
    """Whether `step` is the last: SIGTERM arrived, or every host reached a preemption point."""
    if not (notice.received or ckpt.reached_preemption(step)):
        return False
    summary.log_line(
        f"{'SIGTERM received' if notice.received else 'Preemption notice'}: step "
        f"{step} is the last; saving it, then exiting. A second SIGTERM exits at "
        "once (the last complete checkpoint stays valid)."
    )
    return True


def _log_end(config, ckpt, writer, *, start: int, step: int, preempted: bool) -> None:
    """Waits for the last save to commit, then says where the run stands."""
    if preempted and step == start:
        summary.log_line("Preempted before the first step; nothing new to save.")
        return
    began = time.monotonic()
    ckpt.wait()
    if preempted:
        summary.log_line(
            f"Preempted: saved step {step} in {ckpt.directory} (waited "
            f"{time.monotonic() - began:.1f}s for the save to commit). Run the same command "
            "again to resume from it."
        )
        return
    summary.log_line(
        f"Done at step {max(start, config.num_steps)}. TensorBoard: tensorboard --logdir "
        f"{writer.logdir}   checkpoints: {ckpt.directory} (latest step {ckpt.latest_step()})"
    )


class _NonFiniteGuard:
    """The metrics logger's check of each step's on-device NaN/Inf flag (read one step late, so
    the device never waits).

    `stop`: raise naming the step, the bad values and the last good checkpoint. `skip`: the
    step already dropped its update on device; count it and stop after too many in a row.
    """

    def __init__(self, config: ml_collections.ConfigDict, ckpt: checkpoint.Checkpointer):
        self._mode = config.train.on_nonfinite
        self._limit = config.train.max_nonfinite
        self._ckpt = ckpt
        self.in_a_row = 0
        self.skipped = 0

    def __call__(self, step: int, metrics: dict[str, jax.Array]) -> dict[str, int]:
        """Blocks on `step`'s flag; -> the counts to log ({"nonfinite_skipped": 1} if skipped)."""
        if not bool(metrics[NONFINITE]):
            self.in_a_row = 0
            return {}
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
        bad = ", ".join(f"{k}={v}" for k, v in values.items() if not np.isfinite(v))
        if self._mode == "skip":
            self.in_a_row += 1
            self.skipped += 1
            logging.warning(
                "Step %d: non-finite %s; update skipped (%d in a row, %d in all).",
                step,
                bad,
                self.in_a_row,
                self.skipped,
            )
            if self.in_a_row < self._limit:
                return {"nonfinite_skipped": 1}
        self._raise(step, bad)

    def _raise(self, step: int, bad: str) -> None:
        self._ckpt.wait()  # a save in flight is of a step checked good; let it commit
        last = self._ckpt.latest_step()
        where = (
            f"the last good checkpoint is step {last} in {self._ckpt.directory}"
            if last is not None
            else "there is no checkpoint yet"
        )
        what = (
            f"{self.in_a_row} non-finite steps in a row (train.max_nonfinite={self._limit})"
            if self._mode == "skip"
            else "train.on_nonfinite='stop'"
        )
        raise NonFiniteError(
            f"Non-finite loss or gradient at step {step} ({bad}); stopped by {what}. Nothing "
            f"after it was saved: {where}. Lower optimizer.learning_rate, check the data, or "
            "set train.on_nonfinite='skip' to drop such updates."
        )
