"""`python -m jaxcolor.train --config configs/tiny.py [--workdir DIR] [--config.key=value ...]`."""

from __future__ import annotations

import datetime
import functools
import os
import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxcolor import cli
from jaxcolor.core import platform_env

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config .py file (e.g. configs/tiny.py).", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Run directory for TensorBoard logs and checkpoints (local path or gs://). Resumes if it "
    "holds a checkpoint. Default: runs/<config name>-<timestamp>.",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    os.environ.get("JAX_COORDINATOR_ADDRESS", ""),
    "Multi-process runs on CPU/GPU clusters: host:port of process 0 (env "
    "JAX_COORDINATOR_ADDRESS). Not needed on Cloud TPU slices, which are detected.",
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes",
    int(os.environ.get("JAX_NUM_PROCESSES", "0")),
    "With --coordinator_address: how many processes join (env JAX_NUM_PROCESSES).",
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id",
    int(os.environ.get("JAX_PROCESS_ID", "-1")),
    "With --coordinator_address: this process's id, 0..num_processes-1 (env JAX_PROCESS_ID).",
)
_LIBRARY_LOGS = flags.DEFINE_bool(
    "library_logs", False, "Also show INFO logs of the libraries (Orbax, Grain, JAX)."
)
flags.mark_flags_as_required(["config"])


def _default_workdir(config_path: str) -> str:
    """runs/<config stem>-<UTC timestamp>, relative to the current directory."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return str(pathlib.Path("runs") / f"{pathlib.Path(config_path).stem}-{stamp}")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    platform_env.skip_absent_tpu()  # no libtpu errors on a host without a TPU
    # Imported after absl has parsed the flags.
    import jax

    from jaxcolor import parallel
    from jaxcolor.core.errors import ConfigError, JaxcolorError
    from jaxcolor.run.loop import train_and_evaluate

    if not _LIBRARY_LOGS.value:
        logging.get_absl_handler().addFilter(cli.OwnInfoOnly())

    try:
        # Before anything touches a device: every process of a pod joins here.
        if parallel.initialize_distributed(
            _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value
        ):
            logging.info(
                "Process %d of %d (%d local devices, %d in all).",
                jax.process_index(),
                jax.process_count(),
                jax.local_device_count(),
                jax.device_count(),
            )
            if not _WORKDIR.value:
                raise ConfigError(
                    "A multi-process run needs --workdir, the same for every process (gs://... "
                    "on a TPU pod): each process would otherwise pick its own timestamped one."
                )
        workdir = _WORKDIR.value or _default_workdir(
            config_flags.get_config_filename(flags.FLAGS["config"])
        )
        if not _WORKDIR.value:
            pathlib.Path(workdir).parent.mkdir(exist_ok=True)
            logging.info("No --workdir given; writing to %s", workdir)
        train_and_evaluate(_CONFIG.value, workdir)
    except JaxcolorError as e:
        # The message says what to change; a traceback would only bury it.
        sys.exit(f"jaxcolor.train: error: {e}")


if __name__ == "__main__":
    app.run(main, flags_parser=functools.partial(cli.parse_config_flags, "jaxcolor.train"))
