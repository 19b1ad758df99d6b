"""Flag parsing for the entry points that take `--config FILE` and `--config.key=value`.

A user's mistake on the command line (a missing config file, a mistyped key, a bad value) ends
the program with one line naming the flag and what to do, exit code 1, before anything is built.
"""

from __future__ import annotations

import difflib
import logging as std_logging
import os
import pathlib
import sys

import ml_collections
from absl import flags, logging

CONFIG = "config"


def parse_config_flags(
    prog: str, argv: list[str], flag_values: flags.FlagValues = flags.FLAGS
) -> list[str]:
    """`flag_values(argv)`, returning the arguments left over; usable as `app.run`'s
    `flags_parser` (with `prog` bound)."""
    path = _config_path(argv)
    if path is not None and not pathlib.Path(path.split(":", 1)[0]).is_file():
        sys.exit(
            f"{prog}: error: --{CONFIG}={path}: no such file; give a config .py file such as "
            "configs/tiny.py (relative to the current directory, or an absolute path)."
        )
    try:
        rest = flag_values(argv)
        if path is not None:
            flag_values[CONFIG].value  # noqa: B018 - loads the file now, not inside main
        return rest
    except flags.Error as e:  # a bad value, an unknown flag, a config that raised
        sys.exit(f"{prog}: error: {_one_line(e, path)}")
    except (AttributeError, KeyError):  # ml_collections' error for an override's missing key
        if path is None:
            raise
        message = _unknown_override(flag_values[CONFIG].parser.parse(path), argv)
        if message is None:
            raise
        sys.exit(f"{prog}: error: {message}")


class OwnInfoOnly(std_logging.Filter):
    """Keeps jaxcolor's INFO lines and everyone's warnings; Orbax logs every save at INFO."""

    def __init__(self):
        super().__init__()
        import jaxcolor

        self._package_dir = os.path.dirname(jaxcolor.__file__)

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or record.pathname.startswith(
            self._package_dir
        )


def show_info_logs() -> None:
    """jaxcolor's INFO lines (the training loop's progress) on stderr, as `python -m
    jaxcolor.train` prints them, for an entry point that is not an absl app (`bench quality`)."""
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)
    handler = logging.get_absl_handler()
    if not any(isinstance(f, OwnInfoOnly) for f in handler.filters):
        handler.addFilter(OwnInfoOnly())


def _one_line(error: flags.Error, path: str | None) -> str:
    """absl's message; for a config file that raised ValueError (configs/pod.py refusing its
    argument) ml_collections wraps the whole traceback in it: keep the config's own words."""
    lines = str(error).strip().splitlines()
    if len(lines) > 1 and lines[-1].startswith("ValueError: "):
        return f"--{CONFIG}={path}: {lines[-1].removeprefix('ValueError: ')}"
    return str(error)


def _config_path(argv: list[str]) -> str | None:
    """The value of --config in `argv` (`--config=F` or `--config F`), or None."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{CONFIG}="):
            return arg.split("=", 1)[1]
        if arg == f"--{CONFIG}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _unknown_override(config: ml_collections.ConfigDict, argv: list[str]) -> str | None:
    """The first `--config.a.b=v` in `argv` whose key `config` lacks, described with the keys
    nearest to it; None when every override names an existing key."""
    prefix = f"--{CONFIG}."
    for arg in argv:
        if not arg.startswith(prefix):
            continue
        path = arg[len(prefix) :].split("=", 1)[0]
        node, parents = config, []
        for key in path.split("."):
            if not isinstance(node, ml_collections.ConfigDict):
                break  # into a value (e.g. a tuple element): not a key error of ours
            if key not in node:
                return _describe_missing(prefix + path, parents, key, sorted(node.keys()))
            node, parents = node[key], [*parents, key]
    return None


def _describe_missing(flag: str, parents: list[str], key: str, keys: list[str]) -> str:
    where = f"config.{'.'.join(parents)}" if parents else "the config"
    dotted = ".".join(parents)
    near = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
    full = lambda k: f"{dotted}.{k}" if dotted else k  # noqa: E731
    hint = f"did you mean {' or '.join(f'--{CONFIG}.{full(k)}' for k in near)}? " if near else ""
    return f"{flag}: {where} has no key {key!r}; {hint}(its keys: {', '.join(keys)})"
