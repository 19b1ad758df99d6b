"""Config name -> network spec, and the builders of its Flax module and PyTorch twin.

The only place a network's name is matched (as pix2pix's `find_model_using_name` and
big_vision's `models/<name>` found by name). A family adds one line to `_FAMILIES`; a test or a
plugin can `register()` more at run time. Importing this module imports neither JAX nor torch:
a module is imported when the first network of its kind is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from jaxcolor.core.errors import ConfigError, ExportError
from jaxcolor.nets.base import DISCRIMINATOR, GENERATOR, Arch, Entry, NetworkSpec
from jaxcolor.nets.classic_unet import spec as classic_unet
from jaxcolor.nets.pix2pix import spec as pix2pix
from jaxcolor.nets.reference import spec as reference
from jaxcolor.nets.resunet import spec as resunet

_FAMILIES: tuple[NetworkSpec, ...] = (
    pix2pix.UNET,
    pix2pix.PATCHGAN,
    classic_unet.CLASSIC_UNET,
    resunet.RESUNET,
    reference.REFERENCE_UNET,
    reference.MULTISCALE_PATCHGAN,
)
# Checkpoints and exports written before networks were named hold pix2pix's two.
_DEFAULT_NAMES = {GENERATOR: pix2pix.UNET.name, DISCRIMINATOR: pix2pix.PATCHGAN.name}
_SPECS: dict[str, dict[str, NetworkSpec]] = {GENERATOR: {}, DISCRIMINATOR: {}}


def register(spec: NetworkSpec) -> NetworkSpec:
    """Makes `spec` findable by `model.<role>.name = spec.name`; returns it."""
    if spec.role not in _SPECS:
        raise ValueError(f"NetworkSpec.role must be {GENERATOR!r} or {DISCRIMINATOR!r}")
    known = _SPECS[spec.role].get(spec.name)
    if known is not None and known != spec:
        raise ValueError(f"A different {spec.role} is already registered as {spec.name!r}.")
    _SPECS[spec.role][spec.name] = spec
    return spec


for _spec in _FAMILIES:
    register(_spec)


def names(role: str) -> list[str]:
    """The registered names of `role` ("generator" or "discriminator"), sorted."""
    return sorted(_SPECS[role])


def lookup(role: str, name: str) -> NetworkSpec:
    """The spec of `model.<role>.name = name`; ConfigError listing the known names otherwise."""
    spec = _SPECS[role].get(name)
    if spec is None:
        raise ConfigError(
            f"model.{role}.name={name!r} is not a known {role}; choose one of {names(role)}."
        )
    return spec


def generator(arch: Arch) -> NetworkSpec:
    """The spec of a `model.generator` config section (or a config.json generator)."""
    return lookup(GENERATOR, arch["name"])


def discriminator(arch: Arch) -> NetworkSpec:
    """The spec of a `model.discriminator` config section (or a config.json discriminator)."""
    return lookup(DISCRIMINATOR, arch["name"])


def spec_of(role: str, arch: Arch) -> NetworkSpec:
    return generator(arch) if role == GENERATOR else discriminator(arch)


def section(role: str, name: str, **options: Any) -> dict[str, Any]:
    """A `model.<role>` config section for the network `name`: its spec's defaults, then
    `options`; an option the network does not have raises ConfigError naming the known ones."""
    spec = lookup(role, name)
    unknown = sorted(set(options) - set(spec.defaults))
    if unknown:
        raise ConfigError(
            f"model.{role}: {name!r} has no option {', '.join(map(repr, unknown))}; its options: "
            f"{', '.join(spec.defaults)}."
        )
    return {"name": name, **spec.defaults, **options}


def complete(role: str, arch: Arch) -> dict[str, Any]:
    """A saved `model.<role>` section (a checkpoint's config or an export's config.json) with
    what it lacks: the name (pix2pix's, before networks were named) and every option added to
    its network since (at its default)."""
    arch = {"name": _DEFAULT_NAMES[role], **arch}
    return {"name": arch["name"], **lookup(role, arch["name"]).defaults, **arch}


def unknown_options(role: str, arch: Arch) -> list[str]:
    """The keys of a `model.<role>` config section that its network does not take."""
    return sorted(set(arch) - {"name", *spec_of(role, arch).defaults})


def layout(role: str, arch: Arch) -> list[Entry]:
    """The PyTorch state_dict layout of a config.json network section (`in_channels` set)."""
    try:
        return spec_of(role, arch).layout(arch)
    except ConfigError as e:  # an export naming a network this jaxcolor does not have
        raise ExportError(str(e)) from e


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_flax(role: str, cfg: Mapping[str, Any], *, in_channels: int, dtype: Any, rngs) -> Any:
    """`model.<role>` config section -> its Flax NNX module taking `in_channels` inputs, computing
    in the jnp `dtype` (see jaxcolor.nets.build for the config-level builders)."""
    spec = spec_of(role, cfg)
    options = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
    options.pop("name", None)
    return _resolve(spec.flax)(in_channels=in_channels, dtype=dtype, rngs=rngs, **options)


def torch_kwargs(role: str, arch: Arch) -> dict[str, Any]:
    """What the PyTorch twin of a (complete) network section takes: `in_channels` and the
    network's options but `flax_only`; the section's other fields (an export's `file`, notes)
    describe the export, not the network."""
    spec = spec_of(role, arch)
    options = {k: arch[k] for k in spec.defaults if k not in spec.flax_only}
    return {"in_channels": arch["in_channels"], **options}


def build_torch(role: str, arch: Arch) -> Any:
    """config.json network section -> its untrained PyTorch twin (imports torch, not JAX)."""
    try:
        spec = spec_of(role, arch)
    except ConfigError as e:
        raise ExportError(str(e)) from e
    return _resolve(spec.torch)(**torch_kwargs(role, arch))


def unregister(spec: NetworkSpec) -> None:
    """Undoes `register(spec)` (a plugin or test removing the network it added)."""
    if _SPECS[spec.role].get(spec.name) == spec:
        del _SPECS[spec.role][spec.name]
