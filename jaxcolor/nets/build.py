"""The Flax side of the registry: `model.generator` / `model.discriminator` -> NNX modules."""

from __future__ import annotations

from typing import Any

from flax import nnx

from jaxcolor.nets import registry
from jaxcolor.nets.base import DISCRIMINATOR, GENERATOR
from jaxcolor.nets.layers import compute_dtype, resolve_upsample_impl


def build_generator(
    cfg: Any, *, in_channels: int, dtype: str, rngs: nnx.Rngs, platform: str | None = None
) -> nnx.Module:
    """`model.generator` config -> generator taking `in_channels` (sketch + hints) inputs,
    computing in `dtype` (a `compute_dtype` config value). `upsample_impl="auto"` is decided
    for `platform`, that of the devices it will run on (`parallel.platform(mesh)`)."""
    options = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
    if "upsample_impl" in options and platform is not None:
        options["upsample_impl"] = upsample_impl(options, platform)
    return registry.build_flax(
        GENERATOR, options, in_channels=in_channels, dtype=compute_dtype(dtype), rngs=rngs
    )


def upsample_impl(cfg: Any, platform: str | None) -> str | None:
    """How a `model.generator` computes its k4-s2 up-convolutions on `platform` ("auto"
    decided); None for a network without the option."""
    if "upsample_impl" not in cfg:
        return None
    return resolve_upsample_impl(cfg["upsample_impl"], platform)


def build_discriminator(cfg: Any, *, in_channels: int, dtype: str, rngs: nnx.Rngs) -> nnx.Module:
    """`model.discriminator` config -> discriminator over concat(condition, colour image)."""
    return registry.build_flax(
        DISCRIMINATOR, cfg, in_channels=in_channels, dtype=compute_dtype(dtype), rngs=rngs
    )
