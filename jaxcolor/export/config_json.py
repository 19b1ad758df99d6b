"""The config.json of an export: the networks, the input-channel layout and the value ranges.

The file format (names, reading) is jaxcolor.nets.export_format; each network's own fields come
from its family spec (`NetworkSpec.export_notes`, `pix2pix_compatible`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jaxcolor.core.errors import ExportError
from jaxcolor.core.image_size import image_hw, to_json
from jaxcolor.data.hints import HINT_CHANNELS, condition_channels
from jaxcolor.nets import registry
from jaxcolor.nets.base import DISCRIMINATOR, GENERATOR
from jaxcolor.nets.export_format import (
    COLOR_CHANNELS,
    DISCRIMINATOR_FILE,
    FORMAT,
    FORMAT_VERSION,
    GENERATOR_FILE,
    SKETCH_CHANNELS,
    network_sections,
    task,
)


def architectures(config: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Training config (plain dict) -> {"generator": arch, "discriminator": arch or None}."""
    return network_sections(config, in_channels=condition_channels(config))


def pix2pix_compatible(net: str, arch: Mapping[str, Any]) -> bool:
    """Whether the weights load into pytorch-CycleGAN-and-pix2pix's own class with strict=True."""
    return registry.spec_of(net, arch).pix2pix_compatible(arch)


def _merge_notes(out: dict[str, Any], notes: Mapping[str, Mapping[str, Any]]) -> None:
    for section, fields in notes.items():
        out[section] |= fields


def make_config_json(
    config: Mapping[str, Any], *, step: int, version: str, with_discriminator: bool
) -> dict[str, Any]:
    """The config.json of an export: architectures, input-channel layout and value ranges."""
    archs = architectures(config)
    hints = config["data"]["hints"]
    hint_channels = HINT_CHANNELS[hints]
    g = archs["generator"]
    h, w = image_hw(config)
    out: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "jaxcolor_version": version,
        "step": step,
        "task": task(config),
        "generator": {
            **g,
            "file": GENERATOR_FILE,
            "pix2pix_compatible": pix2pix_compatible(GENERATOR, g),
        },
        "discriminator": None,
        "inputs": {
            # Channel order of the generator input (NCHW): sketch first, then the hints.
            "layout": [
                {"name": "sketch", "channels": SKETCH_CHANNELS, "method": config["data"]["sketch"]},
                {"name": "hints", "channels": hint_channels, "method": hints},
            ],
            "sketch": "grayscale line art, dark lines on white",
            "hints": hints,
            "hint_channels": hint_channels,
            "color_order": "RGB",
            "value_range": [-1.0, 1.0],
            "from_uint8": "x / 127.5 - 1",
            "image_size": to_json(config["image_size"]),
            "image_hw": [h, w],
            "size_multiple": registry.generator(g).size_multiple(g),
        },
        "output": {
            "channels": g["out_channels"],
            "color_order": "RGB",
            "value_range": [-1.0, 1.0],
            "to_uint8": "round((y + 1) * 127.5)",
        },
        "notes": (
            "BatchNorm running_var holds Flax's running average of the biased batch variance "
            "(PyTorch tracks the unbiased one); eval-mode outputs are identical."
        ),
    }
    _merge_notes(out, registry.generator(g).export_notes(g, config))
    if task(config) == "sketch":
        out["inputs"] |= {
            # The sketch extractor's input is the colour image; its output the sketch.
            "layout": [{"name": "color", "channels": COLOR_CHANNELS}],
            "color": "RGB colour image",
            "hints": "none",
            "hint_channels": 0,
        }
        del out["inputs"]["sketch"]
        out["output"] |= {
            "content": "sketch: grayscale line art, dark lines on white",
            "color_order": "gray",
            "target_method": config["data"]["sketch"],
        }
    if with_discriminator:
        d = archs["discriminator"]
        if d is None:
            raise ExportError(
                "This run has no discriminator (loss.gan_mode='none'); drop --with_discriminator."
            )
        out["discriminator"] = {
            **d,
            "file": DISCRIMINATOR_FILE,
            "input": "concat(generator input, RGB image) in [-1, 1]",
            "pix2pix_compatible": pix2pix_compatible(DISCRIMINATOR, d),
        }
        _merge_notes(out, registry.discriminator(d).export_notes(d, config))
    return out
