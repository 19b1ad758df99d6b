"""`python -m jaxcolor.train --config configs/tiny.py [--workdir DIR] [--config.key=value ...]`."""

from __future__ import annotations

import datetime
import pathlib

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config .py file (e.g. configs/tiny.py).", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Run directory for TensorBoard logs and checkpoints (local path or gs://). Resumes if it "
    "holds a checkpoint. Default: runs/<config name>-<timestamp>.",
)
flags.mark_flags_as_required(["config"])


def default_workdir(config_path: str) -> str:
    """runs/<config stem>-<UTC timestamp>, relative to the current directory."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return str(pathlib.Path("runs") / f"{pathlib.Path(config_path).stem}-{stamp}")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from jaxcolor.training.loop import train_and_evaluate  # after absl has parsed the flags

    workdir = _WORKDIR.value or default_workdir(
        config_flags.get_config_filename(flags.FLAGS["config"])
    )
    if not _WORKDIR.value:
        logging.info("No --workdir given; writing to %s", workdir)
    train_and_evaluate(_CONFIG.value, workdir)


if __name__ == "__main__":
    app.run(main)
