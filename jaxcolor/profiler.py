"""A `jax.profiler` trace of a window of training steps, for TensorBoard's Profile tab."""

from __future__ import annotations

import contextlib

import jax
from absl import logging


class StepProfiler:
    """A `jax.profiler` trace of steps start_step .. start_step + num_steps - 1 on process 0,
    written under `logdir` (plugins/profile/<run>/*.xplane.pb: TensorBoard's Profile tab, with
    tensorboard-plugin-profile installed). num_steps = 0 (the default) is off: each call is
    then one comparison."""

    def __init__(self, logdir: str, *, start_step: int, num_steps: int):
        self._logdir = logdir
        self._first = start_step if num_steps > 0 and jax.process_index() == 0 else -1
        self._last = start_step + num_steps - 1
        self._active = False

    def before(self, step: int) -> None:
        """Call before running `step`: starts the trace at start_step."""
        if step == self._first:
            jax.profiler.start_trace(self._logdir)
            self._active = True
            logging.info("Profiling steps %d..%d into %s", self._first, self._last, self._logdir)

    def annotation(self, step: int):
        """A context for running `step`: while tracing, jax.profiler.StepTraceAnnotation("train",
        step_num=step), which the Profile tab's overview and input-pipeline pages use to split
        the trace into steps; otherwise a no-op context."""
        if self._active:
            return jax.profiler.StepTraceAnnotation("train", step_num=step)
        return contextlib.nullcontext()

    def after(self, step: int, outputs) -> None:
        """Call after dispatching `step`: at the last profiled step, waits for `outputs` (the
        device work belongs in the trace) and writes it."""
        if self._active and step >= self._last:
            jax.block_until_ready(outputs)
            self.stop()

    def stop(self) -> None:
        """Writes a trace still running (the loop ended early); no-op otherwise."""
        if self._active:
            self._active = False
            jax.profiler.stop_trace()
