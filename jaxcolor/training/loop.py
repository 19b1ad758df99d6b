"""`train_and_evaluate(config, workdir)`: the whole run, resumable from its workdir."""

from __future__ import annotations

import time

import jax
import ml_collections
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from jaxcolor import checkpoint, parallel, summary
from jaxcolor.data import pipeline
from jaxcolor.training import config_checks
from jaxcolor.training.step import TrainState, create_train_state, jit_eval_step, jit_train_step


def _fetch(tree) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(tree).items()}


class _Evaluator:
    """Runs the generator on the fixed validation batch; writes val scalars and the image grid."""

    def __init__(self, config, nets, mesh, val_host: dict[str, np.ndarray], writer):
        self._step_fn = jit_eval_step(nets, mesh)
        self._batch = parallel.to_global(val_host, parallel.batch_sharding(mesh))
        # The grid shows the global batch, so gather every process's rows once.
        self._host = {
            k: np.asarray(multihost_utils.process_allgather(v, tiled=True))
            for k, v in self._batch.items()
        }
        self._writer = writer

    def __call__(self, step: int, state: TrainState) -> dict[str, float]:
        pred, metrics = self._step_fn(state, self._batch)
        metrics = _fetch(metrics)
        pred = np.asarray(multihost_utils.process_allgather(pred, tiled=True))
        self._writer.scalars(step, metrics, "val")
        grid = summary.image_grid(
            [self._host["sketch"], self._host["hints"], pred, self._host["color"]]
        )
        self._writer.image(step, "val/sketch_hints_prediction_target", grid)
        self._writer.flush()
        summary.log_line(f"eval step {step}: val l1 {metrics['l1']:.4f} psnr {metrics['psnr']:.2f}")
        return metrics


def _absolute(path: str) -> epath.Path:
    """Local paths made absolute (Orbax requires it); gs:// and other URLs kept as they are."""
    return epath.Path(path) if "://" in str(path) else epath.Path(path).resolve()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains for `config.num_steps`, resuming from the newest checkpoint in `workdir`."""
    config_checks.validate(config)
    workdir = _absolute(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mesh = parallel.create_mesh(config.mesh.data)
    parallel.check_batch_size(config.batch_size, mesh)
    parallel.check_batch_size(config.eval_batch_size, mesh, name="eval_batch_size")

    state, nets = create_train_state(
        config, in_channels=pipeline.condition_channels(config), mesh=mesh
    )
    train_source, val_source = pipeline.make_sources(config)
    train_iter = iter(pipeline.train_dataset(config, train_source))
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints", config)
    writer = summary.Writer(workdir / "tensorboard")

    start = ckpt.latest_step()
    if start is None:
        start = 0
        summary.log_line(f"Starting fresh in {workdir}")
        if config.init_from:  # PyTorch (pix2pix) weights; only a fresh run starts from them
            from jaxcolor.export.convert import init_state_from_torch

            state = init_state_from_torch(state, config)
    else:
        state = ckpt.restore(state, train_iter, start)
        summary.log_line(f"Resuming from step {start} in {ckpt.directory}")
    summary.log_line(f"TensorBoard logs: {writer.logdir}   checkpoints: {ckpt.directory}")

    evaluate = _Evaluator(config, nets, mesh, pipeline.validation_batch(config, val_source), writer)
    train_step = jit_train_step(nets, config, mesh)
    data_sharding = parallel.batch_sharding(mesh)
    progress = summary.Progress(start, config.num_steps, config.batch_size)

    if start == 0:
        evaluate(0, state)
    if start >= config.num_steps:
        summary.log_line(f"Already at step {start} >= num_steps={config.num_steps}; nothing to do.")

    pending = None  # (step, device metrics): fetched one step late so logging never stalls
    compile_start = time.perf_counter()
    for step in range(start + 1, config.num_steps + 1):
        batch = parallel.to_global(next(train_iter), data_sharding)
        state, metrics = train_step(state, batch)
        if step == start + 1:
            jax.block_until_ready(metrics)
            compile_seconds = time.perf_counter() - compile_start
            summary.log_line(f"First step (incl. compilation) took {compile_seconds:.1f}s")
            progress.reset(step)
        if pending is not None:
            _log_train(writer, progress, *pending)
            pending = None
        if step % config.log_every == 0 or step == config.num_steps:
            pending = (step, metrics)
        if step % config.eval_every == 0 or step == config.num_steps:
            if pending is not None:  # evaluation blocks anyway; keep its time out of img/s
                _log_train(writer, progress, *pending)
                pending = None
            evaluate(step, state)
            progress.reset(step)
        ckpt.save(step, state, train_iter, force=step == config.num_steps)
    if pending is not None:
        _log_train(writer, progress, *pending)

    ckpt.close()
    writer.close()
    summary.log_line(
        f"Done at step {max(start, config.num_steps)}. TensorBoard: tensorboard --logdir "
        f"{writer.logdir}   checkpoints: {ckpt.directory}"
    )
    return state


def _log_train(writer: summary.Writer, progress: summary.Progress, step: int, metrics) -> None:
    values = _fetch(metrics)
    rate = progress.update(step)
    writer.scalars(step, values | rate, "train")
    summary.log_line(progress.line(step, values, rate))
