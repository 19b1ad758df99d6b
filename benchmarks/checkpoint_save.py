"""How long a checkpoint save blocks the training loop vs. how long the async save takes.

    python benchmarks/checkpoint_save.py [--config configs/default.py] [--saves 3] [--dir DIR]

Builds the config's full train state (both networks, BatchNorm statistics, Adam moments) on the
current backend, then times `Checkpointer.save` (the synchronous part: device-to-host copy and
dispatch) and `Checkpointer.wait` (until the async write has committed) for a few saves.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from jaxcolor import checkpoint, parallel
from jaxcolor.data import pipeline
from jaxcolor.training.state import create_train_state

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Config file.")
_SAVES = flags.DEFINE_integer("saves", 3, "Number of timed saves.")
_DIR = flags.DEFINE_string("dir", None, "Checkpoint directory (default: a temp dir).")


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    config.data.num_workers = 0
    mesh = parallel.create_mesh(config.mesh.data)
    state, _ = create_train_state(config, mesh=mesh)
    train_source, _ = pipeline.make_sources(config)
    data_iter = iter(pipeline.train_dataset(config, train_source))
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = checkpoint.Checkpointer(_DIR.value or tmp, config)
        blocking, total = [], []
        for step in range(1, _SAVES.value + 1):
            jax.block_until_ready(state)
            start = time.perf_counter()
            ckpt.save(step, state, data_iter, data_start=0)
            blocking.append(time.perf_counter() - start)
            ckpt.wait()
            total.append(time.perf_counter() - start)
        ckpt.close()
    print(
        json.dumps(
            {
                "backend": jax.default_backend(),
                "devices": jax.device_count(),
                "state_mib": round(state_bytes / 2**20, 1),
                "blocking_s": [round(t, 3) for t in blocking],
                "total_s": [round(t, 3) for t in total],
                "median_blocking_s": round(statistics.median(blocking), 3),
                "median_total_s": round(statistics.median(total), 3),
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
