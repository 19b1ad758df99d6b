"""Model constructors: callers build networks only through these two functions."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import ml_collections
from flax import nnx

from jaxcolor.models.layers import count_params
from jaxcolor.models.patchgan import PatchDiscriminator
from jaxcolor.models.unet import UNetGenerator

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
GENERATORS = {"unet": UNetGenerator}
DISCRIMINATORS = {"patchgan": PatchDiscriminator}

__all__ = [
    "DTYPES",
    "PatchDiscriminator",
    "UNetGenerator",
    "build_discriminator",
    "build_generator",
    "count_params",
]


def compute_dtype(name: str) -> Any:
    """`compute_dtype` config value -> jnp dtype, with a message naming the option."""
    if name not in DTYPES:
        raise ValueError(f"compute_dtype must be one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def _kwargs(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    kwargs = cfg.to_dict()
    kwargs.pop("name")
    return kwargs


def build_generator(
    cfg: ml_collections.ConfigDict, *, in_channels: int, dtype: str, rngs: nnx.Rngs
) -> nnx.Module:
    """`model.generator` config -> generator taking `in_channels` (sketch + hints) inputs."""
    if cfg.name not in GENERATORS:
        raise ValueError(
            f"model.generator.name must be one of {sorted(GENERATORS)}, got {cfg.name!r}"
        )
    return GENERATORS[cfg.name](
        in_channels=in_channels, dtype=compute_dtype(dtype), rngs=rngs, **_kwargs(cfg)
    )


def build_discriminator(
    cfg: ml_collections.ConfigDict, *, in_channels: int, dtype: str, rngs: nnx.Rngs
) -> nnx.Module:
    """`model.discriminator` config -> discriminator over concat(condition, colour image)."""
    if cfg.name not in DISCRIMINATORS:
        raise ValueError(
            f"model.discriminator.name must be one of {sorted(DISCRIMINATORS)}, got {cfg.name!r}"
        )
    return DISCRIMINATORS[cfg.name](
        in_channels=in_channels, dtype=compute_dtype(dtype), rngs=rngs, **_kwargs(cfg)
    )
