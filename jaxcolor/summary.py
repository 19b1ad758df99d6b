"""TensorBoard writing (tensorboardX, process 0 only), image grids, the console progress line
and the train metrics logger."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import jax
import numpy as np
from absl import logging
from etils import epath

from jaxcolor import gcs_events


class Writer:
    """Scalars and images to TensorBoard; a no-op on every process but 0."""

    def __init__(self, logdir: epath.PathLike, flush_secs: float = 30):
        self.logdir = str(logdir)
        self._writer = None
        if jax.process_index() == 0:
            from tensorboardX import SummaryWriter, record_writer

            if self.logdir.startswith("gs://"):
                record_writer.register_writer_factory(
                    "gs", gcs_events.SegmentedGCSRecordWriterFactory()
                )
            # tensorboardX names the file by the second and the host only, so a second writer
            # started within the same second (a quick restart, `evaluate`) replaced the first
            # one's file. The nanosecond clock keeps the names unique and in writing order.
            self._writer = SummaryWriter(
                logdir=self.logdir, flush_secs=flush_secs, filename_suffix=f".{time.time_ns()}"
            )

    def scalars(self, step: int, values: Mapping[str, float], prefix: str) -> None:
        """Writes `prefix/name` scalars."""
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(f"{prefix}/{name}", float(value), step)

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        """Writes one uint8 HWC image."""
        if self._writer is not None:
            self._writer.add_image(tag, image, step, dataformats="HWC")

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _to_rgb_uint8(x: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 or [-1, 1] float -> (N, H, W, 3) uint8 (gray repeated, first 3 kept)."""
    if x.dtype != np.uint8:
        x = np.clip(np.round((np.asarray(x, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    c = x.shape[-1]
    if c == 0:  # no hints: a mid-gray placeholder column
        return np.full((*x.shape[:-1], 3), 128, np.uint8)
    if c == 1:
        return np.repeat(x, 3, axis=-1)
    if c == 2:
        return np.concatenate([x, x[..., :1]], axis=-1)
    return x[..., :3]


def image_grid(columns: list[np.ndarray], max_rows: int = 8, pad: int = 2) -> np.ndarray:
    """One row per example, one column per array (e.g. sketch | hints | prediction | target)."""
    cols = [_to_rgb_uint8(c[:max_rows]) for c in columns]
    n, h, w, _ = cols[0].shape
    grid = np.full((n * (h + pad) + pad, len(cols) * (w + pad) + pad, 3), 255, np.uint8)
    for j, col in enumerate(cols):
        for i in range(n):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = col[i]
    return grid


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


@jax.tree_util.register_pytree_with_keys_class
class Metrics(dict):
    """A step's metrics (name -> on-device scalar) that also names the loss terms it optimised.

    The names are static pytree data, so they come out of `jax.jit` beside the values: the
    console line shows every term a config turns on, and a new loss shows up there by being
    added to `losses` where the step computes it, not to a list in the logger.
    """

    def __init__(self, values: Mapping[str, jax.Array] = (), *, losses: Sequence[str] = ()):
        super().__init__(values)
        self.losses = tuple(losses)

    def tree_flatten_with_keys(self):
        children = [(jax.tree_util.DictKey(k), v) for k, v in self.items()]
        return children, (tuple(self), self.losses)

    @classmethod
    def tree_unflatten(cls, aux, children) -> Metrics:
        keys, losses = aux
        return cls(zip(keys, children, strict=True), losses=losses)


def loss_terms(metrics: Mapping[str, object]) -> tuple[str, ...]:
    """The names of the loss terms among `metrics` (a `Metrics`; none for a plain mapping)."""
    return metrics.losses if isinstance(metrics, Metrics) else ()


class Progress:
    """Throughput and ETA between log points, and the one-line console report."""

    def __init__(self, start_step: int, num_steps: int, batch_size: int):
        self.num_steps, self.batch_size = num_steps, batch_size
        self._last_step, self._last_time = start_step, time.perf_counter()

    def reset(self, step: int) -> None:
        """Restarts the clock at `step` (after compilation, which is not throughput)."""
        self._last_step, self._last_time = step, time.perf_counter()

    def update(self, step: int) -> dict[str, float]:
        """Images/sec and steps/sec since the previous call; empty if no step was timed."""
        now = time.perf_counter()
        steps = step - self._last_step
        elapsed = now - self._last_time
        self._last_step, self._last_time = step, now
        if steps <= 0 or elapsed <= 0:  # e.g. the first step, whose time is compilation
            return {}
        return {
            "steps_per_sec": steps / elapsed,
            "images_per_sec": steps * self.batch_size / elapsed,
        }

    def line(
        self,
        step: int,
        metrics: Mapping[str, float],
        rate: Mapping[str, float],
        losses: Sequence[str] = (),
    ) -> str:
        """`step 120/300 (40%) | g_l1 0.2345 ... d_loss 0.6931 | 45.1 img/s | ETA 1m23s`: the
        `losses` (names of metrics, in their order) and the throughput."""
        text = f"step {step}/{self.num_steps} ({100.0 * step / self.num_steps:.0f}%)"
        shown = " ".join(f"{k} {metrics[k]:.4f}" for k in losses if k in metrics)
        if shown:
            text += f" | {shown}"
        if rate:
            eta = (self.num_steps - step) / rate["steps_per_sec"]
            text += f" | {rate['images_per_sec']:.1f} img/s | ETA {_duration(eta)}"
        return text


class MetricsLogger:
    """Train metrics read one step late (MaxText's `buffer_and_write_train_metrics`), so the host
    never waits for the device: `train/*` scalars and the console line every `log_every` steps
    and at the last, with throughput and running counts.

    `check(step, metrics)` sees every step's metrics before they are written (e.g. its NaN/Inf
    flag); it returns counts to add ({"nonfinite_skipped": 1}) or raises to stop the run.
    Boolean metrics are such flags: they are not written.
    """

    def __init__(
        self,
        writer: Writer,
        *,
        start_step: int,
        num_steps: int,
        batch_size: int,
        log_every: int,
        check: Callable[[int, Mapping[str, jax.Array]], Mapping[str, int]] | None = None,
    ):
        self._writer, self._num_steps, self._log_every = writer, num_steps, log_every
        self._progress = Progress(start_step, num_steps, batch_size)
        self._check = check
        self._counts: dict[str, int] = {}
        self._held: tuple[int, Mapping[str, jax.Array]] | None = None
        self._step, self._first_step = start_step, start_step + 1
        self._began = time.perf_counter()  # the first step's time is mostly compilation

    def count(self, name: str, n: int = 1) -> None:
        """Adds `n` to the running total `name`, written with each train log once non-zero."""
        self._counts[name] = self._counts.get(name, 0) + n

    def buffer(self, step: int, metrics: Mapping[str, jax.Array]) -> None:
        """Holds `step`'s (on-device) metrics and writes the previous step's."""
        if step == self._first_step:
            jax.block_until_ready(metrics)
            log_line(
                f"First step (incl. compilation) took {time.perf_counter() - self._began:.1f}s"
            )
            self._progress.reset(step)  # compilation is not throughput
        self.flush()
        self._held, self._step = (step, metrics), step

    def flush(self) -> None:
        """Checks and writes the held step now (before an evaluation, a save, the end)."""
        if self._held is None:
            return
        (step, metrics), self._held = self._held, None
        if self._check is not None:
            for name, n in self._check(step, metrics).items():
                self.count(name, n)
        if step % self._log_every == 0 or step == self._num_steps:
            self._write(step, metrics)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Flushes, then keeps the time spent inside (an evaluation) out of the throughput."""
        self.flush()
        yield
        self._progress.reset(self._step)

    def _write(self, step: int, metrics: Mapping[str, jax.Array]) -> None:
        fetched = jax.device_get(dict(metrics))
        values = {k: float(v) for k, v in fetched.items() if np.asarray(v).dtype != bool}
        values |= {k: n for k, n in self._counts.items() if n}
        rate = self._progress.update(step)
        self._writer.scalars(step, values | rate, "train")
        log_line(self._progress.line(step, values, rate, loss_terms(metrics)))


def log_line(text: str) -> None:
    """Console output from process 0 only."""
    if jax.process_index() == 0:
        logging.info("%s", text)
