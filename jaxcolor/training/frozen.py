"""The frozen networks a step runs beside the trained ones, and how each is built.

A step takes them as an argument, `step(state, frozen, batch)`: `frozen` maps a network's name
to the network, a pytree whose leaves are its weights (replicated device arrays, or their shapes
when compiling ahead of time) and whose graph is static, so the weights reach the compiled
program as arguments, never as constants (VGG-19's ~80 MB would otherwise sit in every
executable, its compile and its persistent-cache entry).

Adding a frozen network (for a loss, say) is one entry in `NETWORKS`: its name, the config
keys that ask for it, when the config needs it, and its `load` (weights read and placed) and
`abstract` (shapes only, no file read) forms. The step reads it as `frozen[name]`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections

from jaxcolor.data.sketch import is_model_sketch
from jaxcolor.training import sketcher, vgg

Frozen = Mapping[str, Any]  # name -> a frozen network (a pytree: weights as leaves)
Build = Callable[[ml_collections.ConfigDict, Any], Any]  # (config, sharding) -> the network


@dataclasses.dataclass(frozen=True)
class FrozenNetwork:
    """One frozen network: when a config needs it and its two forms."""

    name: str  # its key in `frozen`
    asked_by: str  # the config keys that ask for it, for messages
    needed: Callable[[ml_collections.ConfigDict], bool]
    load: Build  # weights read (from the file the config names) and placed with `sharding`
    abstract: Build  # weights as shapes placed with `sharding`; reads no weights file
    # The generator's inputs need it (not only a loss), so evaluation and inference run it too.
    inference: bool = False

    def loader(self) -> str:
        """`module.function` of `load`, as the messages name it."""
        return f"{self.load.__module__.rsplit('.', 1)[-1]}.{self.load.__name__}"


SKETCH, VGG = "sketch", "vgg"
NETWORKS: tuple[FrozenNetwork, ...] = (
    FrozenNetwork(
        SKETCH,
        "data.sketch='model:DIR'",
        lambda config: is_model_sketch(config.data.sketch),
        sketcher.load_sketcher,
        sketcher.abstract_sketcher,
        inference=True,
    ),
    FrozenNetwork(
        VGG,
        "loss.perceptual_weight / loss.style_weight",
        vgg.uses_vgg,
        vgg.load_vgg,
        vgg.abstract_vgg,
    ),
)


def needed(
    config: ml_collections.ConfigDict, *, inference: bool = False
) -> tuple[FrozenNetwork, ...]:
    """The frozen networks `config`'s train step runs (with `inference`: its eval step)."""
    return tuple(n for n in NETWORKS if n.needed(config) and (n.inference or not inference))


def load(config: ml_collections.ConfigDict, sharding=None, *, inference: bool = False) -> Frozen:
    """The frozen networks `config` needs, their weights read and placed with `sharding`
    (replicated over the mesh, for the steps)."""
    return {n.name: n.load(config, sharding) for n in needed(config, inference=inference)}


def abstract(
    config: ml_collections.ConfigDict, sharding=None, *, inference: bool = False
) -> Frozen:
    """`load`'s networks with their weights as shapes placed with `sharding`; no weights file is
    read (a sketch model's config.json is)."""
    return {n.name: n.abstract(config, sharding) for n in needed(config, inference=inference)}


def check(frozen: Frozen, config: ml_collections.ConfigDict, *, inference: bool = False) -> None:
    """A step's `frozen` holds every network its config needs; ValueError naming the missing
    one and how to build it otherwise (raised when the step is traced)."""
    for n in needed(config, inference=inference):
        if n.name not in frozen:
            raise ValueError(
                f"{n.asked_by}: the step's frozen networks have no {n.name!r}; pass "
                f"{n.name}={n.loader()}(config, sharding) in them (frozen.load(config, "
                "sharding) builds every one the config needs)."
            )
