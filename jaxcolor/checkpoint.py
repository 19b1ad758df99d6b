"""Every checkpoint read and write: the train state, the Grain iterator state and run metadata.

- `Checkpointer`: a run's async saves and its resume (shapes checked against the config).
- `restore_read_only`: a run's checkpoint with its own config (export, evaluate, serve),
  completed with the keys added since it was written (`_saved_config`).

The state is any pytree; its shapes and shardings come from the caller (an abstract state or a
freshly built one), as MaxText's `load_state_if_possible` takes them, so nothing here knows the
networks. Saves are asynchronous and atomic: Orbax writes `<step>.orbax-checkpoint-tmp` (or, on
GCS, a step directory without `commit_success.txt`) and commits it only when every file is
written, so a run killed mid-save leaves the previous checkpoint as the newest complete one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging as std_logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

import jaxcolor
from jaxcolor import config as config_lib
from jaxcolor import parallel, summary
from jaxcolor.core.errors import CheckpointMismatchError, ExportError, WorkdirError

PyTree = Any

STATE, DATA, METADATA = "state", "data", "metadata"
# Config keys that decide the shapes in the state: a mismatch here means "another run".
# image_size shapes the image pool (model.image_pool.size > 0).
SHAPE_KEYS = ("model", "data.hints", "loss.gan_mode", "task", "image_size", "train.ema_decay")


class Checkpointer:
    """Async, interval-based saves of {state, data iterator, metadata}; every process calls it."""

    def __init__(self, directory: epath.PathLike, config: ml_collections.ConfigDict):
        self.directory = epath.Path(directory)
        self._config = config
        self.discarded = _incomplete_steps(self.directory)
        # Explicit policy: Orbax's default also saves the first step a manager sees.
        policy = ocp.checkpoint_managers.AnySavePolicy(
            [
                ocp.checkpoint_managers.FixedIntervalPolicy(config.checkpoint_every),
                ocp.checkpoint_managers.PreemptionCheckpointingPolicy(),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            save_decision_policy=policy,
            max_to_keep=config.keep_checkpoints,
            create=True,
            enable_async_checkpointing=True,
            cleanup_tmp_directories=True,  # a save killed half-way is deleted, never restored
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, handler_registry=handler_registry()
        )
        self._saved_step: int | None = None
        self._data_start = 0  # where this run's data stream began, saved with every step

    def restore_or_start(
        self,
        target: PyTree,
        data_iter_at: Callable[[int], Iterator],
        start_fresh: Callable[[], PyTree],
    ) -> tuple[PyTree, Iterator, int]:
        """-> (state, data iterator, step) of the newest complete checkpoint, restored onto
        `target`; without one, `start_fresh()` at step 0 (e.g. the initialised state, or
        `config.init_from`'s PyTorch weights, which only a fresh run starts from).

        `target` gives the shapes and shardings (the current mesh): an abstract state, so a
        resumed run never computes the initial one (as MaxText's load_state_if_possible).
        `data_iter_at(n)` is the training data from example n of this process's stream. A
        saved iterator state that does not map onto this run restarts the stream
        deterministically at the saved step.
        """
        if self.discarded:
            summary.log_line(
                f"Discarded incomplete checkpoint(s) {', '.join(self.discarded)} in "
                f"{self.directory} (a save that was interrupted)."
            )
        step = self.latest_step()
        if step is None:
            summary.log_line(f"Starting fresh in {self.directory.parent}")
            return start_fresh(), data_iter_at(0), 0

        metadata = self.metadata(step)
        state = self.restore(target, step, metadata)
        self._data_start = metadata.get("data_start", 0)
        data_iter = data_iter_at(self._data_start)
        problem = self.restore_data(data_iter, step, metadata)
        if problem is not None:
            data_iter.close()
            per_process = parallel.per_process_batch_size(self._config.batch_size)
            self._data_start = step * per_process
            logging.warning(
                "The data iterator state saved at step %d cannot be used: %s. The data stream "
                "restarts deterministically at example %d of this process's shard instead "
                "(step %d x %d examples per process).",
                step,
                problem,
                self._data_start,
                step,
                per_process,
            )
            data_iter = data_iter_at(self._data_start)
        summary.log_line(f"Resuming from step {step} in {self.directory}")
        return state, data_iter, step

    def latest_step(self) -> int | None:
        """Newest complete (committed) checkpoint, or None for a fresh run."""
        return self._manager.latest_step()

    def metadata(self, step: int) -> dict[str, Any]:
        """The JSON written beside `step`: config, version, mesh and data positions."""
        restored = self._manager.restore(
            step, args=ocp.args.Composite(**{METADATA: ocp.args.JsonRestore()})
        )
        return dict(restored[METADATA] or {})

    def restore(self, state: PyTree, step: int, metadata: dict[str, Any]) -> PyTree:
        """Restores `step` onto the shardings (the current mesh) and shapes of `state` (arrays
        or `jax.ShapeDtypeStruct`s)."""
        self._check_compatible(state, step, metadata)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        return _restore_state(self._manager, step, abstract)

    def restore_data(self, data_iter, step: int, metadata: dict[str, Any]) -> str | None:
        """Restores the Grain iterator in place; else returns why its state does not map."""
        problem = _data_state_problem(metadata, self._config)
        if problem is not None:
            return problem
        try:
            self._manager.restore(
                step,
                args=ocp.args.Composite(**{DATA: grain.checkpoint.CheckpointRestore(data_iter)}),
            )
        except (FileNotFoundError, KeyError, IndexError, TypeError, ValueError) as e:
            return f"its saved state does not fit this pipeline ({type(e).__name__}: {e})"
        return None

    def should_save(self, step: int) -> bool:
        """True on the save interval and at a (multi-host) preemption sync point."""
        return self._manager.should_save(step)

    def save(self, step: int, state: PyTree, data_iter, *, data_start: int | None = None) -> None:
        """Starts an async save of `step`; returns once the device arrays are copied out.

        `data_start`: where the data stream began (default: as `restore_or_start` found it).
        """
        if self._saved_step == step:
            return
        if data_start is None:
            data_start = self._data_start
        metadata = {
            "step": step,
            "jaxcolor_version": jaxcolor.__version__,
            "mesh_shape": dict(state.step.sharding.mesh.shape),
            "process_count": jax.process_count(),
            "data_start": data_start,
            "config": self._config.to_dict(),
        }
        with _disk_errors(self.directory):
            self._manager.save(
                step,
                args=ocp.args.Composite(
                    **{
                        STATE: ocp.args.StandardSave(state),
                        DATA: grain.checkpoint.CheckpointSave(data_iter),
                        METADATA: ocp.args.JsonSave(metadata),
                    }
                ),
                force=True,
            )
        self._saved_step = step

    def reached_preemption(self, step: int) -> bool:
        """The multi-host preemption sync point (JAX's preemption service); False elsewhere."""
        return jax.process_count() > 1 and self._manager.reached_preemption(step)

    def wait(self) -> None:
        """Blocks until the pending async save has committed."""
        with _disk_errors(self.directory):
            self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for the pending async save to commit, then releases the manager."""
        self.wait()
        self._manager.close()

    def _check_compatible(self, state: PyTree, step: int, metadata: dict[str, Any]) -> None:
        saved_tree = self._manager.item_metadata(step)[STATE]
        if saved_tree is None:  # unreadable metadata: let the restore itself report the problem
            return
        saved, wanted = _shapes(saved_tree), _shapes(state)
        if saved == wanted:
            return
        diffs = _config_diff(_saved_config(metadata) or {}, self._config.to_dict())
        first = sorted(set(saved.items()) ^ set(wanted.items()))[:1]
        raise CheckpointMismatchError(
            f"The checkpoint at step {step} in {self.directory} does not fit this config "
            f"({'; '.join(diffs) or f'first difference: {first}'}). Use the settings it was "
            "trained with to resume it, or pass a new --workdir to start a fresh run."
        )


def _restore_state(manager: ocp.CheckpointManager, step: int, target: PyTree) -> PyTree:
    """`step`'s state restored onto `target` (shapes, dtypes, shardings).

    A field of the state that `target` leaves None and the checkpoint lacks (one added since it
    was written, e.g. `ema` with train.ema_decay = 0) stays None, so checkpoints written before
    that field existed still restore.
    """
    absent = _absent_empty_fields(target, manager.item_metadata(step)[STATE])
    present = target
    if absent:
        fields = {f.name: getattr(target, f.name) for f in dataclasses.fields(target)}
        present = {name: value for name, value in fields.items() if name not in absent}
    restored = manager.restore(
        step, args=ocp.args.Composite(**{STATE: ocp.args.StandardRestore(present)})
    )[STATE]
    return target.replace(**restored) if absent else restored


def _absent_empty_fields(target: PyTree, saved_tree) -> set[str]:
    """Names of `target`'s dataclass fields that are None there and absent from `saved_tree`
    (Orbax's metadata of a saved state; None when unreadable)."""
    if saved_tree is None or not dataclasses.is_dataclass(target):
        return set()
    return {
        f.name
        for f in dataclasses.fields(target)
        if getattr(target, f.name) is None and f.name not in saved_tree
    }


def handler_registry() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
    """Every item's handler, known up front: a fresh process can then read an old checkpoint's
    metadata (shapes, JSON) and restore items one at a time."""
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    for item, handler, args in (
        (STATE, ocp.StandardCheckpointHandler, (ocp.args.StandardSave, ocp.args.StandardRestore)),
        (
            DATA,
            grain.checkpoint.CheckpointHandler,
            (grain.checkpoint.CheckpointSave, grain.checkpoint.CheckpointRestore),
        ),
        (METADATA, ocp.JsonCheckpointHandler, (ocp.args.JsonSave, ocp.args.JsonRestore)),
    ):
        instance = handler()
        for arg in args:
            registry.add(item, arg, instance)
    return registry


def _incomplete_steps(directory: epath.Path) -> list[str]:
    """Names of half-written step directories (a save that was killed), as Orbax tells them
    apart: `N.orbax-checkpoint-tmp` on a local disk, a step without `commit_success.txt` on
    GCS."""
    if not directory.exists():
        return []
    return sorted(p.get().name for p in ocp.path.step.all_temporary_paths(directory))


def _saved_config(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The training config in a checkpoint's metadata, completed (`jaxcolor.config.complete`:
    keys added since it was written at their defaults); None when the metadata has none."""
    config = metadata.get("config")
    return None if config is None else config_lib.complete(config)


def _data_state_problem(metadata: dict[str, Any], config: ml_collections.ConfigDict) -> str | None:
    """Why the saved per-process iterator state cannot be used here, or None."""
    saved_processes = metadata.get("process_count")
    if saved_processes != jax.process_count():
        return f"it was saved by {saved_processes} processes, this run has {jax.process_count()}"
    saved = _saved_config(metadata)
    saved_workers = saved["data"]["num_workers"] if saved is not None else None
    if saved_workers != config.data.num_workers:
        return f"it was saved with data.num_workers={saved_workers}, now {config.data.num_workers}"
    return None


def _key_name(entry) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _shapes(tree) -> dict[str, tuple[int, ...]]:
    """{'g/params/downs/0/kernel': shape} for a state or for Orbax's metadata of one."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(map(_key_name, path)): tuple(leaf.shape) for path, leaf in leaves}


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _config_diff(saved: dict, current: dict) -> list[str]:
    """'model.generator.ngf: checkpoint 16, config 8' for the keys that shape the state."""
    saved, current = _flatten(saved), _flatten(current)
    keys = sorted(
        k for k in saved.keys() | current.keys() if k.startswith(SHAPE_KEYS) and k in current
    )
    return [
        f"{k}: checkpoint {saved.get(k)!r}, config {current[k]!r}"
        for k in keys
        if saved.get(k) != current[k]
    ]


@contextlib.contextmanager
def _disk_errors(directory: epath.Path):
    """Turns 'no space left' / 'permission denied' from a save into an actionable error."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise WorkdirError(
                f"No space left to write checkpoints in {directory} ({e}). Free space or lower "
                "keep_checkpoints, then rerun the same command: it resumes from the newest "
                "complete checkpoint."
            ) from e
        if isinstance(e, PermissionError):
            raise WorkdirError(
                f"Cannot write checkpoints in {directory} ({e}); fix its permissions or choose "
                "another --workdir."
            ) from e
        raise


@dataclasses.dataclass(frozen=True)
class Restored:
    """A checkpoint's step, its training config (plain dict) and its state."""

    step: int
    config: dict[str, Any]
    state: PyTree


class _DropReadOnlyNotes(std_logging.Filter):
    """Orbax warns that a read-only manager is read-only; for a read-only restore that is the
    point."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return "read_only" not in record.getMessage() and "read only" not in record.getMessage()


def _read_only_manager(workdir: epath.PathLike) -> tuple[epath.Path, ocp.CheckpointManager]:
    path = epath.Path(workdir) if "://" in str(workdir) else epath.Path(workdir).resolve()
    directory = path / "checkpoints"
    if not directory.is_dir():
        raise ExportError(
            f"No checkpoints in {path}: {directory} does not exist. --workdir must be the "
            "directory given to python -m jaxcolor.train."
        )
    quiet = _DropReadOnlyNotes()
    std_logging.getLogger("absl").addFilter(quiet)
    try:
        options = ocp.CheckpointManagerOptions(read_only=True, create=False)
        manager = ocp.CheckpointManager(
            directory, options=options, handler_registry=handler_registry()
        )
    finally:
        std_logging.getLogger("absl").removeFilter(quiet)
    return directory, manager


def restore_read_only(
    workdir: epath.PathLike,
    abstract_state: Callable[[ml_collections.ConfigDict], PyTree],
    step: int | None = None,
) -> Restored:
    """The newest (or `step`'s) complete checkpoint in WORKDIR/checkpoints, restored onto
    `abstract_state(its own config)` (shapes, dtypes and shardings); writes nothing."""
    directory, manager = _read_only_manager(workdir)
    try:
        steps = sorted(manager.all_steps())
        if not steps:
            raise ExportError(f"{directory} holds no complete checkpoint yet.")
        if step is None:
            step = steps[-1]
        elif step not in steps:
            raise ExportError(
                f"No checkpoint for step {step} in {directory}; available steps: "
                f"{', '.join(map(str, steps))}."
            )
        meta = manager.restore(step, args=ocp.args.Composite(**{METADATA: ocp.args.JsonRestore()}))[
            METADATA
        ]
        config = _saved_config(meta or {})
        if config is None:
            raise ExportError(f"Checkpoint {directory / str(step)} has no config in its metadata.")
        target = abstract_state(ml_collections.ConfigDict(config))
        try:
            state = _restore_state(manager, step, target)
        except (ValueError, KeyError, TypeError) as e:
            raise ExportError(
                f"Checkpoint {directory / str(step)} does not match the state its own config "
                f"describes (written by another jaxcolor version?): {e}"
            ) from e
    finally:
        manager.close()
    return Restored(step=step, config=config, state=state)


class PreemptionNotice:
    """Turns the first SIGTERM into a flag the loop polls at the end of each step.

    A second SIGTERM falls through to the previous handler (normally: exit at once); the
    checkpoint being written then stays a temp directory and is never restored. With several
    processes, JAX's preemption service owns SIGTERM and `Checkpointer.reached_preemption`
    reports the step at which all hosts agree to stop, so this does not install itself.
    """

    def __init__(self):
        self.received = False
        self._installed = False
        self._previous = signal.SIG_DFL

    def __enter__(self) -> PreemptionNotice:
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, self._handle)
            # None: a handler installed outside Python; the default action is the safe fallback.
            self._previous = signal.SIG_DFL if previous is None else previous
            self._installed = True
        return self

    def __exit__(self, *exc_info) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False

    def _handle(self, signum, frame) -> None:
        # Only a flag (no logging, no I/O): the loop reports it at the end of the step.
        self.received = True
        signal.signal(signal.SIGTERM, self._previous)
