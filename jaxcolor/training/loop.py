"""`train_and_evaluate(config, workdir)`: the whole run, resumable from its workdir."""

from __future__ import annotations

import contextlib
import shutil
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from jaxcolor import checkpoint, parallel, summary
from jaxcolor.data import pipeline
from jaxcolor.errors import NonFiniteError, WorkdirError
from jaxcolor.evaluation import evaluator as split_eval
from jaxcolor.export.convert import init_state_from_torch
from jaxcolor.training import config_checks, sketcher
from jaxcolor.training.step import (
    NONFINITE,
    TrainState,
    create_train_state,
    jit_eval_step,
    jit_train_step,
)


def _fetch(tree) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(tree).items()}


class _Evaluator:
    """Runs the generator on the fixed validation batch; writes val scalars and the image grid."""

    def __init__(self, config, nets, mesh, val_host: dict[str, np.ndarray], writer):
        self._step_fn = jit_eval_step(nets, mesh, config)
        self._batch = parallel.to_global(val_host, parallel.batch_sharding(mesh))
        # The grid shows the global batch, so gather every process's rows once.
        self._host = {
            k: np.asarray(multihost_utils.process_allgather(v, tiled=True))
            for k, v in self._batch.items()
        }
        if nets.sketch_model is not None:  # data.sketch = "model:DIR": made on device, once
            sketch = jax.jit(lambda b: _model_sketch(nets.sketch_model, b))(self._batch)
            self._host["sketch"] = np.asarray(multihost_utils.process_allgather(sketch, tiled=True))
        self._task = config.get("task", "colorize")
        self._writer = writer

    def __call__(self, step: int, state: TrainState) -> dict[str, float]:
        pred, metrics = self._step_fn(state, self._batch)
        metrics = _fetch(metrics)
        pred = np.asarray(multihost_utils.process_allgather(pred, tiled=True))
        self._writer.scalars(step, metrics, "val")
        if self._task == "sketch":
            grid = summary.image_grid([self._host["color"], pred, self._host["sketch"]])
            self._writer.image(step, "val/color_prediction_target", grid)
        else:
            # Reference models show their reference between the hints and the prediction.
            inputs = [self._host[k] for k in ("sketch", "hints", "reference") if k in self._host]
            grid = summary.image_grid([*inputs, pred, self._host["color"]])
            self._writer.image(step, "val/sketch_hints_prediction_target", grid)
        self._writer.flush()
        summary.log_line(
            f"eval step {step}: val l1 {metrics['l1']:.4f} psnr {metrics['psnr']:.2f} "
            f"ssim {metrics['ssim']:.4f}"
        )
        return metrics


def _model_sketch(sketch_model: sketcher.Sketcher, batch) -> jax.Array:
    """The validation batch's sketches as the steps see them, as uint8 for the grid."""
    color = batch["color"].astype(jax.numpy.float32) / 127.5 - 1.0
    sketch = sketcher.sketch_from_color(sketch_model, color)
    return jax.numpy.round((sketch + 1.0) * 127.5).astype(jax.numpy.uint8)


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
    path = config.get("compile_cache_dir", "auto")
    return str(workdir / "compile_cache") if path == "auto" else path


def _check_free_space(workdir: epath.Path, state: TrainState, keep: int) -> None:
    """Fails before training when not even one checkpoint fits; warns when `keep` may not."""
    if "://" in str(workdir):
        return
    need = sum(x.nbytes for x in jax.tree.leaves(state))
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


def _start_or_resume(config, ckpt: checkpoint.Checkpointer, state: TrainState, source, workdir):
    """-> (state, data iterator, data_start, step) from the newest complete checkpoint or fresh."""
    if ckpt.discarded:
        summary.log_line(
            f"Discarded incomplete checkpoint(s) {', '.join(ckpt.discarded)} in {ckpt.directory}"
            " (a save that was interrupted)."
        )
    step = ckpt.latest_step()
    if step is None:
        summary.log_line(f"Starting fresh in {workdir}")
        if config.init_from:  # PyTorch (pix2pix) weights; only a fresh run starts from them
            state = init_state_from_torch(state, config)
        return state, iter(pipeline.train_dataset(config, source)), 0, 0

    metadata = ckpt.metadata(step)
    state = ckpt.restore(state, step, metadata)
    data_start = metadata.get("data_start", 0)
    data_iter = iter(pipeline.train_dataset(config, source, start=data_start))
    problem = ckpt.restore_data(data_iter, step, metadata)
    if problem is not None:
        data_iter.close()
        data_start = step * parallel.per_process_batch_size(config.batch_size)
        logging.warning(
            "The data iterator state saved at step %d cannot be used: %s. The data stream "
            "restarts deterministically at example %d of this process's shard instead "
            "(step %d x %d examples per process).",
            step,
            problem,
            data_start,
            step,
            parallel.per_process_batch_size(config.batch_size),
        )
        data_iter = iter(pipeline.train_dataset(config, source, start=data_start))
    summary.log_line(f"Resuming from step {step} in {ckpt.directory}")
    return state, data_iter, data_start, step


class _NonFiniteGuard:
    """Reads each step's on-device NaN/Inf flag one step late, so the device never waits.

    `stop`: raise naming the step, the bad values and the last good checkpoint. `skip`: the
    step already dropped its update on device; count it and stop after too many in a row.
    """

    def __init__(self, config: ml_collections.ConfigDict, ckpt: checkpoint.Checkpointer):
        self._mode = config.train.on_nonfinite
        self._limit = config.train.max_nonfinite
        self._ckpt = ckpt
        self._pending: list[tuple[int, dict[str, jax.Array]]] = []
        self.in_a_row = 0
        self.skipped = 0

    def push(self, step: int, metrics: dict[str, jax.Array]) -> None:
        self._pending.append((step, metrics))

    def check(self, through: int) -> None:
        """Blocks on the flags of all pushed steps <= `through`."""
        while self._pending and self._pending[0][0] <= through:
            step, metrics = self._pending.pop(0)
            if not bool(metrics[NONFINITE]):
                self.in_a_row = 0
                continue
            values = _fetch(metrics)
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
                    continue
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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains for `config.num_steps`, resuming from the newest checkpoint in `workdir`.

    On SIGTERM (or a multi-host preemption notice) it finishes the current step, saves it,
    waits for the save to commit and returns; rerunning the same call resumes there.
    """
    config_checks.validate(config)
    workdir = _prepare_workdir(workdir)
    cache = parallel.configure_compilation_cache(_compile_cache_dir(config, workdir))
    mesh = parallel.create_mesh(config.mesh.data)
    parallel.start_collectives(mesh)
    parallel.check_batch_size(config.batch_size, mesh)
    parallel.check_batch_size(config.eval_batch_size, mesh, name="eval_batch_size")

    state, nets = create_train_state(
        config, in_channels=pipeline.condition_channels(config), mesh=mesh
    )
    _check_free_space(workdir, state, config.keep_checkpoints)
    train_source, val_source = pipeline.make_sources(config)
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints", config)
    writer = summary.Writer(workdir / "tensorboard")
    with contextlib.ExitStack() as cleanup:  # on any exit: stop catching SIGTERM, commit, close
        cleanup.callback(writer.close)
        cleanup.callback(ckpt.close)
        notice = cleanup.enter_context(checkpoint.PreemptionNotice())
        state, train_iter, data_start, start = _start_or_resume(
            config, ckpt, state, train_source, workdir
        )
        summary.log_line(
            f"TensorBoard logs: {writer.logdir}   checkpoints: {ckpt.directory}   "
            f"compilation cache: {cache or 'off'}"
        )

        parallel.sync_processes("jaxcolor:first-collective")  # the evaluator's all-gather
        evaluate = _Evaluator(
            config, nets, mesh, pipeline.validation_batch(config, val_source), writer
        )
        split_evaluator = None
        if config.eval_split_every > 0:
            split_evaluator = split_eval.SplitEvaluator(
                config,
                nets,
                mesh,
                val_source,
                batch_size=config.eval_batch_size,
                max_images=config.eval_max_images,
            )
        train_step = jit_train_step(nets, config, mesh)
        data_sharding = parallel.batch_sharding(mesh)
        progress = summary.Progress(start, config.num_steps, config.batch_size)
        guard = _NonFiniteGuard(config, ckpt)

        if start == 0:
            evaluate(0, state)
        if start >= config.num_steps:
            summary.log_line(
                f"Already at step {start} >= num_steps={config.num_steps}; nothing to do."
            )

        skipped_images = 0
        pending = None  # (step, device metrics): fetched one step late so logging never stalls
        compile_start = time.perf_counter()
        step, preempted = start, notice.received
        while step < config.num_steps and not preempted:
            step += 1
            host_batch = next(train_iter)
            skipped_images += pipeline.pop_skipped(host_batch)
            batch = parallel.to_global(host_batch, data_sharding)
            state, metrics = train_step(state, batch)
            if step == start + 1:
                jax.block_until_ready(metrics)
                compile_seconds = time.perf_counter() - compile_start
                summary.log_line(f"First step (incl. compilation) took {compile_seconds:.1f}s")
                progress.reset(step)
            guard.push(step, metrics)
            guard.check(through=step - 1)
            if pending is not None:
                _log_train(writer, progress, guard, *pending, skipped_images)
                pending = None
            last = step == config.num_steps
            if step % config.log_every == 0 or last:
                pending = (step, metrics)
            preempted = notice.received or ckpt.reached_preemption(step)
            if preempted:
                summary.log_line(
                    f"{'SIGTERM received' if notice.received else 'Preemption notice'}: step "
                    f"{step} is the last; saving it, then exiting. A second SIGTERM exits at "
                    "once (the last complete checkpoint stays valid)."
                )
            if not preempted and (step % config.eval_every == 0 or last):
                guard.check(through=step)
                if pending is not None:  # evaluation blocks anyway; keep its time out of img/s
                    _log_train(writer, progress, guard, *pending, skipped_images)
                    pending = None
                evaluate(step, state)
                progress.reset(step)
            if (
                split_evaluator is not None
                and not preempted
                and (step % config.eval_split_every == 0 or last)
            ):
                _evaluate_split(split_evaluator, step, state, writer)
                progress.reset(step)
            if preempted or last or ckpt.should_save(step):
                guard.check(through=step)  # never checkpoint a step that went non-finite
                ckpt.save(step, state, train_iter, data_start=data_start)
        if pending is not None:
            _log_train(writer, progress, guard, *pending, skipped_images)
        guard.check(through=step)

        if preempted and step == start:
            summary.log_line("Preempted before the first step; nothing new to save.")
            return state
        if preempted:
            began = time.monotonic()
            ckpt.wait()
            summary.log_line(
                f"Preempted: saved step {step} in {ckpt.directory} (waited "
                f"{time.monotonic() - began:.1f}s for the save to commit). Run the same command "
                "again to resume from it."
            )
            return state
        ckpt.wait()
        summary.log_line(
            f"Done at step {max(start, config.num_steps)}. TensorBoard: tensorboard --logdir "
            f"{writer.logdir}   checkpoints: {ckpt.directory} (latest step {ckpt.latest_step()})"
        )
        return state


def _evaluate_split(evaluator, step: int, state: TrainState, writer: summary.Writer) -> None:
    """The whole validation split (up to eval_max_images): `eval_val/*` scalars + a console line."""
    scores = evaluator(state)
    split_eval.write(scores, step=step, split="val", writer=writer, json_path=None)
    summary.log_line(split_eval.describe(scores, "val", step) + f" ({scores.seconds:.1f}s)")


def _log_train(
    writer: summary.Writer,
    progress: summary.Progress,
    guard: _NonFiniteGuard,
    step: int,
    metrics,
    skipped_images: int = 0,
) -> None:
    values = _fetch(metrics)
    del values[NONFINITE]
    if guard.skipped:
        values["nonfinite_skipped"] = guard.skipped
    if skipped_images:  # unusable files this process passed over (each named in the log)
        values["skipped_images"] = skipped_images
    rate = progress.update(step)
    writer.scalars(step, values | rate, "train")
    summary.log_line(progress.line(step, values, rate))
