"""Orbax CheckpointManager around the train state, the Grain iterator state and run metadata."""

from __future__ import annotations

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

import jaxcolor
from jaxcolor.training.step import TrainState

STATE, DATA, METADATA = "state", "data", "metadata"


class Checkpointer:
    """Async, interval-based saves of {state, data iterator, metadata}; every process calls it."""

    def __init__(self, directory: epath.PathLike, config: ml_collections.ConfigDict):
        self.directory = epath.Path(directory)
        self._config = config
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
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=(STATE, DATA, METADATA)
        )

    def latest_step(self) -> int | None:
        """Newest complete (committed) checkpoint, or None for a fresh run."""
        return self._manager.latest_step()

    def restore(self, state: TrainState, data_iter, step: int) -> TrainState:
        """Restores `step` onto the shardings and shapes of `state`; `data_iter` in place."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                **{
                    STATE: ocp.args.StandardRestore(abstract),
                    DATA: grain.checkpoint.CheckpointRestore(data_iter),
                }
            ),
        )
        return restored[STATE]

    def save(self, step: int, state: TrainState, data_iter, *, force: bool = False) -> bool:
        """Starts an async save if `step` is on the interval (or `force`); True if it did."""
        if not (force or self._manager.should_save(step)):
            return False
        metadata = {
            "step": step,
            "jaxcolor_version": jaxcolor.__version__,
            "mesh_shape": {"data": jax.device_count()},
            "process_count": jax.process_count(),
            "config": self._config.to_dict(),
        }
        return self._manager.save(
            step,
            args=ocp.args.Composite(
                **{
                    STATE: ocp.args.StandardSave(state),
                    DATA: grain.checkpoint.CheckpointSave(data_iter),
                    METADATA: ocp.args.JsonSave(metadata),
                }
            ),
            force=force,
        )

    def close(self) -> None:
        """Waits for the pending async save to commit, then releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()
        logging.info("Checkpoints in %s (latest step %s)", self.directory, self.latest_step())
