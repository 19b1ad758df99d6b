"""What an export directory holds: config.json (format, networks, input layout) and one
safetensors file per network in its PyTorch state_dict layout.

Pure Python (no JAX, no torch): the exporter writes it, and `colorize`, serving, `init_from` and
the frozen sketch extractor (`data.sketch="model:DIR"`) read it.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping
from typing import Any

from jaxcolor.core.errors import ConfigError, ExportError
from jaxcolor.nets import registry
from jaxcolor.nets.base import DISCRIMINATOR, GENERATOR

FORMAT = "jaxcolor-export"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
SKETCH_CHANNELS = 1
COLOR_CHANNELS = 3


# What config.json lacked before a field existed (exports written before tasks: colorizers).
_COMPLETE = {"task": "colorize"}


def task(config: Mapping[str, Any]) -> str:
    """`task` of a training config: "colorize" or "sketch"."""
    return config["task"]


def network_sections(
    config: Mapping[str, Any], *, in_channels: int
) -> dict[str, dict[str, Any] | None]:
    """Training config (plain dict) and the generator's input channels -> {"generator": arch,
    "discriminator": arch or None}, each a network's config section plus its `in_channels`.

    `export.config_json.architectures(config)` is this with the input channels its data.hints
    give; this layer (nets) cannot read them, so the caller passes them."""
    model = config["model"]
    g, d = dict(model["generator"]), dict(model["discriminator"])
    try:
        registry.generator(g)
        registry.discriminator(d)
    except ConfigError as e:  # a name this jaxcolor does not have
        raise ExportError(f"This run cannot be exported: {e}") from e
    g["in_channels"] = in_channels
    d["in_channels"] = in_channels + g["out_channels"]
    gan = config["loss"]["gan_mode"] != "none"
    return {"generator": g, "discriminator": d if gan else None}


def read_config_json(model_dir: str | pathlib.Path) -> dict[str, Any]:
    """Reads and checks DIR/config.json of an export."""
    model_dir = pathlib.Path(model_dir)
    path = model_dir / CONFIG_FILE
    if not model_dir.is_dir():
        raise ExportError(f"Model directory {model_dir} does not exist (expected an export).")
    if not path.is_file():
        raise ExportError(
            f"{path} is missing: --model must be a directory written by python -m jaxcolor.export."
        )
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ExportError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise ExportError(f"{path} is not a jaxcolor export config (no format={FORMAT!r}).")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise ExportError(
            f"{path} has format_version {cfg.get('format_version')}; this jaxcolor reads "
            f"version {FORMAT_VERSION}. Re-export with this version."
        )
    return complete(cfg)


def complete(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """An export's config.json with what an older jaxcolor did not write: `task`, and each
    network's name and options (`registry.complete`)."""
    out = {**_COMPLETE, **cfg}
    for role in (GENERATOR, DISCRIMINATOR):
        if out[role] is not None:  # the discriminator is exported on request only
            try:
                out[role] = registry.complete(role, out[role])
            except ConfigError as e:  # a network this jaxcolor does not have
                raise ExportError(f"{e} (in an export's config.json)") from e
    return out
