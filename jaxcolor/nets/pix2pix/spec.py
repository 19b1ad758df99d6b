"""pix2pix's U-Net generator (`unet_256`) and 70x70 PatchGAN: widths, rules, FLOPs, key layout.

The state_dict names are those of pytorch-CycleGAN-and-pix2pix's `UnetGenerator` (nested
`UnetSkipConnectionBlock`s: `model.model.1.model.3...`) and `NLayerDiscriminator` (`model.N`), so
exports load into pix2pix's own classes. Pure Python.
"""

from __future__ import annotations

from jaxcolor.core.image_size import describe, hw, image_hw
from jaxcolor.nets import base
from jaxcolor.nets.base import Arch, Entry, conv_entries, norm_entries, require, uses_bias


def level_widths(num_downs: int, ngf: int) -> list[int]:
    """Encoder output width at each level: ngf, 2ngf, 4ngf, 8ngf, 8ngf, ... (capped at 8*ngf)."""
    return [ngf * min(2**i, 8) for i in range(num_downs)]


def dropout_levels(num_downs: int) -> range:
    """Levels whose decoder block ends in dropout: pix2pix's `num_downs - 5` 8*ngf blocks.

    Level 0 is the outermost block and `num_downs - 1` the innermost, so for unet_256 these are
    levels 4, 5, 6: the three decoder blocks right after the bottleneck.
    """
    return range(4, num_downs - 1)


def patchgan_widths(ndf: int, n_layers: int) -> list[int]:
    """Width of conv i, i = 0..n_layers (the 1-channel head comes after)."""
    return [ndf * min(2**i, 8) for i in range(n_layers + 1)]


def _unet_block_prefix(level: int) -> str:
    """state_dict prefix of U-Net level `level`'s Sequential (0 = outermost)."""
    # Level 0 is `model`; level 1 is item 1 of its Sequential; deeper levels are item 3.
    return "model.model" + ".1.model" * min(level, 1) + ".3.model" * max(level - 1, 0)


def _unet_indices(level: int, num_downs: int) -> dict[str, int]:
    """Sequential index of each layer with weights in one pix2pix UnetSkipConnectionBlock."""
    if level == 0:  # [downconv, submodule, relu, upconv, tanh]
        return {"down": 0, "up": 3}
    if level == num_downs - 1:  # [lrelu, downconv, relu, upconv, upnorm]
        return {"down": 1, "up": 3, "up_norm": 4}
    # [lrelu, downconv, downnorm, submodule, relu, upconv, upnorm, (dropout)]
    return {"down": 1, "down_norm": 2, "up": 5, "up_norm": 6}


def unet_layout(arch: Arch) -> list[Entry]:
    """Every tensor of the U-Net generator, in state_dict order."""
    n, norm = arch["num_downs"], arch["norm"]
    bias = uses_bias(norm)
    entries: list[Entry] = []
    for level in range(n):
        prefix, idx = _unet_block_prefix(level), _unet_indices(level, n)
        entries += conv_entries(f"{prefix}.{idx['down']}", ("downs", level), bias=bias)
        if "down_norm" in idx:
            entries += norm_entries(f"{prefix}.{idx['down_norm']}", ("down_norms", level), norm)
    for level in reversed(range(n)):
        prefix, idx = _unet_block_prefix(level), _unet_indices(level, n)
        up_bias = bias or level == 0
        entries += conv_entries(
            f"{prefix}.{idx['up']}", ("ups", level), bias=up_bias, kind="conv_transpose"
        )
        if "up_norm" in idx:
            entries += norm_entries(f"{prefix}.{idx['up_norm']}", ("up_norms", level), norm)
    return entries


def patchgan_layout(arch: Arch) -> list[Entry]:
    """Every tensor of the PatchGAN: `model.{0, 2, 5, ...}` convs, `model.{3, 6, ...}` norms."""
    n, norm = arch["n_layers"], arch["norm"]
    entries = conv_entries("model.0", ("convs", 0), bias=True)
    for i in range(1, n + 1):
        entries += conv_entries(f"model.{3 * i - 1}", ("convs", i), bias=uses_bias(norm))
        entries += norm_entries(f"model.{3 * i}", ("norms", i), norm)
    entries += conv_entries(f"model.{3 * n + 2}", ("head",), bias=True)
    return entries


def unet_forward_flops(g: Arch, in_channels: int, size) -> int:
    """2 x MACs of one pix2pix U-Net forward (convs k4 s2 p1, up-convs k4 s2)."""
    h, w = hw(size)
    widths = level_widths(g["num_downs"], g["ngf"])
    total = 0
    for i, width in enumerate(widths):
        cin = in_channels if i == 0 else widths[i - 1]
        out = (h // 2 ** (i + 1)) * (w // 2 ** (i + 1))  # output pixels
        total += out * 16 * cin * width  # down conv
        up_in = width if i == g["num_downs"] - 1 else 2 * width
        up_out = g["out_channels"] if i == 0 else widths[i - 1]
        total += out * 16 * up_in * up_out  # up conv: each input pixel meets 16 taps
    return 2 * total


def _conv_out(size: int, stride: int) -> int:
    return (size + 2 - 4) // stride + 1  # k4, p1


def patchgan_forward_flops(d: Arch, in_channels: int, size) -> int:
    """2 x MACs of one PatchGAN forward (k4 p1 convs, strides 2, ..., 2, 1, 1)."""
    widths = [*patchgan_widths(d["ndf"], d["n_layers"]), 1]
    strides = [2] * d["n_layers"] + [1, 1]
    (h, w), cin, total = hw(size), in_channels, 0
    for width, stride in zip(widths, strides, strict=True):
        h, w = _conv_out(h, stride), _conv_out(w, stride)
        total += h * w * 16 * cin * width
        cin = width
    return 2 * total


def _check_unet(config) -> None:
    g = config.model.generator
    base.check_num_downs_multiple(config)
    base.check_fraction(g.dropout, "model.generator.dropout")
    base.check_upsample_impl(g)


def check_patchgan(config) -> None:
    d = config.model.discriminator
    min_size = 2**d.n_layers * 4
    require(
        min(image_hw(config)) >= min_size,
        f"image_size={describe(config.image_size)} is too small for a PatchGAN with "
        f"model.discriminator.n_layers={d.n_layers} (needs >= {min_size}).",
    )


UNET = base.NetworkSpec(
    name="unet",
    role=base.GENERATOR,
    flax="jaxcolor.nets.pix2pix.flax:UNetGenerator",
    torch="jaxcolor.nets.pix2pix.torch:UnetGenerator",
    layout=unet_layout,
    forward_flops=unet_forward_flops,
    defaults={
        "num_downs": 8,  # unet_256: 256 px -> 1x1 bottleneck
        "ngf": 64,
        "norm": "batch",  # batch | instance | none
        "dropout": 0.5,
        "out_channels": 3,
        # How the k4-s2 up-convolutions are computed (same parameters, same outputs): auto |
        # conv_transpose | subpixel (stride-1 convs + depth-to-space); auto = subpixel on CPU.
        "upsample_impl": "auto",
    },
    flax_only=("upsample_impl",),
    check=_check_unet,
    size_multiple=base.num_downs_multiple,
    # pix2pix's norm='none' drops the conv biases (its use_bias tests for InstanceNorm only)
    # while jaxcolor keeps them, and its UnetGenerator needs num_downs >= 5.
    pix2pix_compatible=lambda arch: arch["norm"] != "none" and arch["num_downs"] >= 5,
)
PATCHGAN = base.NetworkSpec(
    name="patchgan",
    role=base.DISCRIMINATOR,
    flax="jaxcolor.nets.pix2pix.flax:PatchDiscriminator",
    torch="jaxcolor.nets.pix2pix.torch:NLayerDiscriminator",
    layout=patchgan_layout,
    forward_flops=patchgan_forward_flops,
    defaults={"ndf": 64, "n_layers": 3, "norm": "batch"},  # n_layers 3: 70x70 receptive field
    check=check_patchgan,
    pix2pix_compatible=lambda arch: arch["norm"] != "none",
)
