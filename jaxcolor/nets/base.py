"""What a network family declares about each of its networks, in pure Python (no JAX, no torch).

A family package (`jaxcolor/nets/<family>/`) holds a `spec.py` with one `NetworkSpec` per network
(its config name, config rules, size multiple, analytic FLOPs, PyTorch state_dict layout and the
dotted names of its Flax module and PyTorch twin), a `flax.py` and a `torch.py`. The registry
(`jaxcolor/nets/registry.py`) maps config names to these specs; nothing else compares a name.

The helpers below build the state_dict layouts (`Entry` lists) the exporter, `init_from`, the
frozen sketch extractor and the PyTorch twins share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from jaxcolor.core.errors import ConfigError
from jaxcolor.core.image_size import describe, image_hw

NORMS = ("batch", "instance", "none")
COMPUTE_DTYPES = ("float32", "bfloat16")
UPSAMPLE_IMPLS = ("auto", "conv_transpose", "subpixel")
GENERATOR, DISCRIMINATOR = "generator", "discriminator"
Arch = Mapping[str, Any]  # a network's config section (ConfigDict or config.json dict)


def uses_bias(norm: str) -> bool:
    """pix2pix drops conv biases before BatchNorm (the norm's shift makes them redundant)."""
    return norm != "batch"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One tensor: its state_dict key, where it lives on the Flax side, and how it converts.

    collection: "params" (nnx.Param), "stats" (nnx.BatchStat) or "torch" (no Flax counterpart:
    BatchNorm's num_batches_tracked). kind: "conv" (HWIO <-> OIHW), "conv_transpose" (HWIO <->
    flipped (in, out, kh, kw)), "linear" ((in, out) <-> (out, in)), "vector" (copied) or "count"
    (int64 scalar).
    """

    key: str
    collection: str
    path: tuple[str | int, ...]
    kind: str


def conv_entries(prefix: str, path: tuple, *, bias: bool, kind: str = "conv") -> list[Entry]:
    """A conv (or transposed conv / linear layer): weight, and bias when it has one."""
    out = [Entry(f"{prefix}.weight", "params", (*path, "kernel"), kind)]
    if bias:
        out.append(Entry(f"{prefix}.bias", "params", (*path, "bias"), "vector"))
    return out


def norm_entries(prefix: str, path: tuple, norm: str) -> list[Entry]:
    """A `layers.Norm` at `path`: BatchNorm2d's five tensors; InstanceNorm and none hold none."""
    if norm != "batch":  # InstanceNorm2d(affine=False, track_running_stats=False), Identity
        return []
    layer = (*path, "layer")
    return [
        Entry(f"{prefix}.weight", "params", (*layer, "scale"), "vector"),
        Entry(f"{prefix}.bias", "params", (*layer, "bias"), "vector"),
        Entry(f"{prefix}.running_mean", "stats", (*layer, "mean"), "vector"),
        Entry(f"{prefix}.running_var", "stats", (*layer, "var"), "vector"),
        Entry(f"{prefix}.num_batches_tracked", "torch", (), "count"),
    ]


def prefixed(prefix: str, path: tuple, entries: list[Entry]) -> list[Entry]:
    """`entries` of a sub-network placed under state_dict `prefix.` and Flax `path`."""
    return [
        Entry(f"{prefix}.{e.key}", e.collection, (*path, *e.path) if e.path else (), e.kind)
        for e in entries
    ]


def require(ok: bool, message: str) -> None:
    """Raises ConfigError(message) unless `ok` (config rules name the key and the fix)."""
    if not ok:
        raise ConfigError(message)


def _check_size_multiple(config, multiple: int, reason: str) -> None:
    """Each side of image_size a multiple of `multiple` (named by `reason`)."""
    h, w = image_hw(config)
    require(
        h % multiple == 0 and w % multiple == 0,
        f"image_size={describe(config.image_size)} must have each side a multiple of {reason}"
        f" = {multiple}; change image_size or {reason.split('**')[-1]}.",
    )


def num_downs_multiple(arch: Arch) -> int:
    """2**num_downs: a U-Net halves its input num_downs times, so its sides must be multiples."""
    return 2 ** arch["num_downs"]


def check_num_downs_multiple(config) -> None:
    """image_size fits the generator's num_downs halvings."""
    multiple = num_downs_multiple(config.model.generator)
    _check_size_multiple(config, multiple, "2**model.generator.num_downs")


def check_fraction(value: float, key: str) -> None:
    """0 <= value < 1 (dropout rates)."""
    require(0.0 <= value < 1.0, f"{key} must be in [0, 1), got {value}")


def check_upsample_impl(arch: Arch) -> None:
    impl = arch["upsample_impl"]
    require(
        impl in UPSAMPLE_IMPLS,
        f"model.generator.upsample_impl must be one of {UPSAMPLE_IMPLS}, got {impl!r}",
    )


def _no_rules(config) -> None:
    del config


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """One network of a family, as the rest of jaxcolor sees it.

    `flax` and `torch` are "module:attribute" names, imported only when a network is built, so
    reading a spec (config checks, the data pipeline, FLOP counts) imports neither framework.
    `defaults` are the network's config options (its `model.<role>` section without `name`)
    with their values when a config does not set them: `jaxcolor.config.network` starts a
    section from them, and `jaxcolor.config.complete` fills a section saved before an option
    existed. The Flax class takes `in_channels` and every option as keyword arguments (plus
    `dtype` and `rngs`), the PyTorch twin `in_channels` and every option but `flax_only` (how
    the Flax side computes, not what: the same parameters and outputs); neither accepts any
    other. `layout(arch)` lists the PyTorch twin's state_dict in order, `arch` being the config
    section plus `in_channels`.
    """

    name: str
    role: str  # GENERATOR or DISCRIMINATOR
    flax: str
    torch: str
    layout: Callable[[Arch], list[Entry]]
    # 2 x MACs of one forward on one image: (arch, in_channels, (height, width)) -> FLOPs.
    forward_flops: Callable[[Arch, int, tuple[int, int]], int]
    # Every config option of the network and its default value ({"num_downs": 8, ...}).
    defaults: Mapping[str, Any]
    # Options the Flax module takes and the PyTorch twin does not (e.g. "upsample_impl").
    flax_only: tuple[str, ...] = ()
    # The family's config rules (the whole ConfigDict; messages name the key and the fix).
    check: Callable[[Any], None] = _no_rules
    # Input sides must be multiples of this (generators).
    size_multiple: Callable[[Arch], int] = lambda arch: 1
    # The generator is called as g(x, reference=RGB) and batches carry "reference".
    takes_reference: bool = False
    # How many deep-supervision outputs g(x, return_aux=True) adds (loss.aux_weights); None
    # for a generator without them.
    num_aux: Callable[[Arch], int] | None = None
    # Whether the weights load into pytorch-CycleGAN-and-pix2pix's own class (strict=True).
    pix2pix_compatible: Callable[[Arch], bool] = lambda arch: False
    # Extra config.json fields: (arch, config dict) -> {section: {field: value}}, section being
    # "generator", "discriminator" or "inputs".
    export_notes: Callable[[Arch, Mapping[str, Any]], dict[str, dict[str, Any]]] = (
        lambda arch, config: {}
    )
