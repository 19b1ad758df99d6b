"""Model constructors: callers build networks only through these two functions."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import ml_collections
from flax import nnx

from jaxcolor.models.classic_unet import ClassicUNetGenerator
from jaxcolor.models.layers import count_params
from jaxcolor.models.patchgan import PatchDiscriminator
from jaxcolor.models.reference import MultiScaleDiscriminator, ReferenceUNet
from jaxcolor.models.resunet import ResUNetGenerator
from jaxcolor.models.unet import UNetGenerator

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
GENERATORS = {
    "unet": UNetGenerator,
    "classic_unet": ClassicUNetGenerator,
    "resunet": ResUNetGenerator,
}
DISCRIMINATORS = {"patchgan": PatchDiscriminator}
GENERATORS["reference_unet"] = ReferenceUNet
DISCRIMINATORS["multiscale_patchgan"] = MultiScaleDiscriminator

__all__ = [
    "DTYPES",
    "MultiScaleDiscriminator",
    "ClassicUNetGenerator",
    "PatchDiscriminator",
    "ReferenceUNet",
    "ResUNetGenerator",
    "UNetGenerator",
    "build_discriminator",
    "build_generator",
    "count_params",
    "takes_reference",
]


def compute_dtype(name: str) -> Any:
    """`compute_dtype` config value -> jnp dtype, with a message naming the option."""
    if name not in DTYPES:
        raise ValueError(f"compute_dtype must be one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def takes_reference(cfg: ml_collections.ConfigDict) -> bool:
    """Whether the `model.generator` config's network is called with `reference=` (an RGB image)."""
    return getattr(GENERATORS.get(cfg.name), "takes_reference", False)


def _build(
    registry: dict[str, type], cfg: ml_collections.ConfigDict, key: str, **kwargs: Any
) -> nnx.Module:
    if cfg.name not in registry:
        raise ValueError(f"{key}.name must be one of {sorted(registry)}, got {cfg.name!r}")
    options = cfg.to_dict()
    options.pop("name")
    return registry[cfg.name](**kwargs, **options)


def build_generator(
    cfg: ml_collections.ConfigDict, *, in_channels: int, dtype: str, rngs: nnx.Rngs
) -> nnx.Module:
    """`model.generator` config -> generator taking `in_channels` (sketch + hints) inputs."""
    return _build(
        GENERATORS,
        cfg,
        "model.generator",
        in_channels=in_channels,
        dtype=compute_dtype(dtype),
        rngs=rngs,
    )


def build_discriminator(
    cfg: ml_collections.ConfigDict, *, in_channels: int, dtype: str, rngs: nnx.Rngs
) -> nnx.Module:
    """`model.discriminator` config -> discriminator over concat(condition, colour image)."""
    return _build(
        DISCRIMINATORS,
        cfg,
        "model.discriminator",
        in_channels=in_channels,
        dtype=compute_dtype(dtype),
        rngs=rngs,
    )
